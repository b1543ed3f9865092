"""The command line layer: one module per area, each with ``register(app)``; the only place Typer
is imported (besides ``cli.py``)."""
