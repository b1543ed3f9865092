"""The feature cache, kept in the user cache folder (:func:`core.cachedir.user_cache_dir`).

Scoring the same real set again should cost nothing, so features of image files are stored on disk
under a key made of the files' contents and the extractor's name (renaming or moving a folder keeps
its key; editing one image changes it), with a small in-memory LRU in front of the disk.
"""

from __future__ import annotations

import hashlib
import io
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.cachedir import user_cache_dir
from core.io import atomic_write_bytes

FEATURE_CACHE_VERSION = "shoegan-fid-features/1"  # bump when decoding or the key recipe changes
MEMORY_ITEMS = 16


def files_digest(paths: Sequence[Path], chunk: int = 1 << 20) -> str:
    """sha256 over the files' contents in order (names and folders do not enter the key)."""
    outer = hashlib.sha256(FEATURE_CACHE_VERSION.encode())
    for path in paths:
        inner = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda h=handle: h.read(chunk), b""):
                inner.update(block)
        outer.update(inner.digest())
    return outer.hexdigest()


def feature_key(paths: Sequence[Path], extractor_name: str) -> str:
    digest = hashlib.sha256(extractor_name.encode())
    digest.update(files_digest(paths).encode())
    return digest.hexdigest()


class FeatureCache:
    """Feature arrays on disk (``<root>/fid-features/<key>.npy``) behind an in-memory LRU."""

    _memory: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()  # shared by all instances

    def __init__(self, root: Path | None = None, memory_items: int = MEMORY_ITEMS) -> None:
        self.folder = (root or user_cache_dir()) / "fid-features"
        self.memory_items = memory_items

    def _memory_key(self, key: str) -> tuple[str, str]:
        return (str(self.folder), key)

    def get(self, key: str) -> np.ndarray | None:
        memory_key = self._memory_key(key)
        if memory_key in self._memory:
            self._memory.move_to_end(memory_key)
            return self._memory[memory_key]
        path = self.folder / f"{key}.npy"
        if not path.is_file():
            return None
        try:
            features = np.load(path, allow_pickle=False)
        except (OSError, ValueError):  # a damaged cache entry is recomputed, never trusted
            return None
        self._remember(memory_key, features)
        return features

    def put(self, key: str, features: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, features, allow_pickle=False)
        atomic_write_bytes(self.folder / f"{key}.npy", buffer.getvalue())
        self._remember(self._memory_key(key), features)

    def _remember(self, memory_key: tuple[str, str], features: np.ndarray) -> None:
        features.setflags(write=False)  # callers share the cached array: keep it immutable
        self._memory[memory_key] = features
        self._memory.move_to_end(memory_key)
        while len(self._memory) > self.memory_items:
            self._memory.popitem(last=False)

    @classmethod
    def clear_memory(cls) -> None:
        cls._memory.clear()
