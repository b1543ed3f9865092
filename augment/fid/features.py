"""Features of a source, batched, with image decoding overlapped with the network and a disk cache.

Folder and list sources are cached by the files' contents plus the extractor's name (see
:mod:`augment.fid.cache`); tensors (e.g. fresh GAN samples) are not, since they rarely repeat.

In a multi-process run (:mod:`core.distributed`) every rank calls :func:`features_of` with the same
source: rank 0 alone reads and writes the cache and tells the others whether it hit; otherwise the
batches are dealt to the ranks (each decodes and runs only its own) and the features gathered back
in order, so every rank returns the one-process array.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from augment.fid.cache import FeatureCache, feature_key
from augment.fid.extractor import Extractor
from augment.fid.sources import FeatureSource, check_image_tensor, decode_rgb, source_paths
from core.distributed import is_main, on_main, rank, world_size
from core.errors import UserError
from core.ranks import gather_objects, map_sharded

Progress = Callable[[int], None]
PIXEL_BUDGET = 64 * 512 * 512  # input pixels per extractor call: bounds memory on large photos


def features_of(
    source: FeatureSource,
    extractor: Extractor,
    batch_size: int = 64,
    cache: bool = True,
    progress: Progress | None = None,
) -> np.ndarray:
    """float32 features [N, extractor.dim] of a folder, a list of image files or a uint8 tensor;
    ``progress`` is called with the number of images done after each batch (or once on a hit)."""
    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: must be at least 1")
    if isinstance(source, torch.Tensor):
        check_image_tensor(source)
        return _tensor_features(source, extractor, batch_size, progress)
    paths = source_paths(source)
    assert paths is not None
    store = FeatureCache() if cache else None
    key, hit = on_main(lambda: _lookup(store, paths, extractor))  # rank 0's cache decides
    if hit is not None:
        if progress:
            progress(len(paths))
        return hit.copy()
    features = _file_features(paths, extractor, batch_size, progress)
    if store is not None and is_main():
        store.put(key, features)
    return features.copy()


def _lookup(
    store: FeatureCache | None, paths: Sequence[Path], extractor: Extractor
) -> tuple[str, np.ndarray | None]:
    """The cache key of ``paths`` and the cached features (None on a miss or without a cache)."""
    if store is None:
        return "", None
    key = feature_key(paths, extractor.name)
    hit = store.get(key)
    if hit is not None and hit.shape == (len(paths), extractor.dim):
        return key, hit
    return key, None


def _tensor_features(
    images: torch.Tensor, extractor: Extractor, batch_size: int, progress: Progress | None
) -> np.ndarray:
    out = np.empty((images.shape[0], extractor.dim), dtype=np.float32)
    step = _batch_for(images.shape[-2], images.shape[-1], batch_size)

    def batch_features(start: int) -> np.ndarray:
        batch = images[start : start + step]
        features = _run(extractor, batch)
        if progress:
            progress(len(batch))
        return features

    starts = range(0, images.shape[0], step)
    for start, features in zip(starts, map_sharded(starts, batch_features), strict=True):
        out[start : start + len(features)] = features
    return out


def _file_features(
    paths: Sequence[Path], extractor: Extractor, batch_size: int, progress: Progress | None
) -> np.ndarray:
    out = np.empty((len(paths), extractor.dim), dtype=np.float32)
    chunks = [
        list(range(i, min(i + batch_size, len(paths)))) for i in range(0, len(paths), batch_size)
    ]
    world = world_size()
    mine = chunks[rank() :: world]  # every chunk in one process
    decoded = _prefetch(mine, lambda chunk: [decode_rgb(paths[i]) for i in chunk])
    results = []
    for chunk, images in zip(mine, decoded, strict=True):
        results.append(_mixed_size_features(images, extractor, batch_size))
        if progress:
            progress(len(chunk))
    for r, part in enumerate(gather_objects(results)):  # chunk r + j * world came from rank r
        for j, features in enumerate(part):
            out[chunks[r + j * world]] = features
    return out


def _prefetch(chunks: list[list[int]], load: Callable[[list[int]], list[torch.Tensor]]) -> Iterator:
    """Decode the next chunk in a background thread while the network works on this one (PIL
    releases the GIL while decoding); at most one chunk waits in memory."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = None
        for chunk in chunks:
            upcoming = pool.submit(load, chunk)
            if pending is not None:
                yield pending.result()
            pending = upcoming
        if pending is not None:
            yield pending.result()


def _mixed_size_features(
    images: list[torch.Tensor], extractor: Extractor, batch_size: int
) -> np.ndarray:
    """Batch images of equal size together; rows come back in the input order."""
    by_size: dict[tuple[int, int], list[int]] = {}
    for index, image in enumerate(images):
        by_size.setdefault((image.shape[-2], image.shape[-1]), []).append(index)
    out = np.empty((len(images), extractor.dim), dtype=np.float32)
    for (height, width), members in by_size.items():
        step = _batch_for(height, width, batch_size)
        for start in range(0, len(members), step):
            group = members[start : start + step]
            out[group] = _run(extractor, torch.stack([images[i] for i in group]))
    return out


def _batch_for(height: int, width: int, batch_size: int) -> int:
    return max(1, min(batch_size, PIXEL_BUDGET // max(1, height * width)))


def _run(extractor: Extractor, batch: torch.Tensor) -> np.ndarray:
    features = extractor(batch)
    if tuple(features.shape) != (batch.shape[0], extractor.dim):
        raise ValueError(
            f"extractor {extractor.name} returned {tuple(features.shape)} for a batch of "
            f"{batch.shape[0]}; expected ({batch.shape[0]}, {extractor.dim})"
        )
    return features.detach().float().cpu().numpy()
