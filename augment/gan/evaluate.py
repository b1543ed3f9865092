"""Per-class FID and KID of a generator against real images of the same class.

Real images are scored at the GAN's image size (decoded exactly as for training), so the GAN is
compared with the distribution it was asked to learn; their features are cached in the user cache
(keyed by the decoded pixels and the extractor), since InceptionV3 costs ~0.1-0.4 s per image on
a CPU. The numeric work is :mod:`augment.fid`'s (imported lazily: it pulls in the
InceptionV3 weights only when FID is asked for). With several processes every rank takes part:
rank 0 reads the cache and tells the others, the features are computed sharded and gathered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from augment.sampling import class_generator, class_images
from core.distributed import is_main, on_main

TENSOR_KEY_VERSION = "shoegan-gan-real-tensor/1"  # bump if the key recipe changes
EVAL_SEED_OFFSET = 7919  # evaluation noise differs from the grid's, and is fixed across evaluations


def build_named_extractor(name: str, device: torch.device | str = "cpu") -> Any:
    """An extractor from :mod:`augment.fid`'s registry ("inception" is the standard FID network)."""
    from augment.fid.extractor import build_extractor

    return build_extractor(device=device, name=name)


def features(
    images: torch.Tensor,
    extractor: Any,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    from augment.fid.features import features_of

    return np.asarray(features_of(images, extractor, batch_size=batch_size, progress=progress))


def fid_kid_dict(feats_a: np.ndarray, feats_b: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """FID and KID of two feature sets (KID subsets clamped to the smaller set by augment.fid)."""
    from augment.fid.metrics import fid_kid

    return fid_kid(feats_a, feats_b, seed=seed).to_dict()


def class_features(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    extractor: Any,
    cache: bool = True,
    progress: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """Features of each class's images, kept in :mod:`augment.fid`'s feature cache under a key of
    the decoded pixels and the extractor (so training, resumes and ``synthesize`` share them)."""
    from augment.fid.cache import FeatureCache

    store = FeatureCache() if cache else None
    result = []
    for c in range(num_classes):
        members = images[labels == c].contiguous()
        digest = hashlib.sha256(f"{TENSOR_KEY_VERSION}:{extractor.name}".encode())
        digest.update(str(tuple(members.shape)).encode())
        digest.update(members.numpy().tobytes())
        key = digest.hexdigest()
        feats = on_main(lambda k=key: store.get(k) if store is not None else None)  # rank 0's cache
        if feats is None or feats.shape != (len(members), extractor.dim):
            feats = features(members, extractor, progress=progress)
            if store is not None and is_main():
                store.put(key, feats)
        elif progress is not None:
            progress(len(members))
        result.append(feats)
    return result


def evaluate_generator(
    generator: nn.Module,
    class_names: list[str],
    real_features: list[np.ndarray],
    extractor: Any,
    *,
    samples_per_class: int,
    seed: int,
    device: torch.device | str = "cpu",
    batch_size: int = 100,
) -> dict[str, Any]:
    """FID/KID per class of ``samples_per_class`` generated images (fixed noise for a given seed)."""
    per_class: dict[str, Any] = {}
    for c, name in enumerate(class_names):
        noise = class_generator(seed + EVAL_SEED_OFFSET, c)
        images = class_images(
            generator, c, samples_per_class, noise, batch_size=batch_size, device=device
        )
        per_class[name] = fid_kid_dict(features(images, extractor), real_features[c])
    return {
        "per_class": per_class,
        "mean_fid": float(np.mean([r["fid"] for r in per_class.values()])),
        "mean_kid": float(np.mean([r["kid_mean"] for r in per_class.values()])),
        "samples_per_class": samples_per_class,
    }
