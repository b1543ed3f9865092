"""Where the toolkit keeps what it can rebuild: FID features, compiled kernels."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SHOEGAN_CACHE_DIR"


def user_cache_dir() -> Path:
    """``$SHOEGAN_CACHE_DIR`` or ``~/.cache/shoegan`` (read at call time, so tests can redirect it)."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "shoegan"
