"""``cli pipeline``: the whole study in one command."""
