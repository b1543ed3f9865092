"""FID and KID with the standard InceptionV3 features, offline, through torch-fidelity.

``build_extractor`` loads torch-fidelity's own InceptionV3 with locally found weights (never a
download), ``features_of`` turns a folder, a file list or a uint8 tensor into features (cached on
disk for files), ``fid_kid`` computes both metrics with torch-fidelity's functions, and
``score_per_class`` does all of it class by class.

Names are imported on first use (PEP 562), so ``import augment.fid.config`` (the CLI's defaults)
does not pull in torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and editors; at run time names load on first use
    from augment.fid.cache import FeatureCache, user_cache_dir
    from augment.fid.config import FidConfig
    from augment.fid.extractor import (
        EXTRACTORS,
        INCEPTION,
        Extractor,
        InceptionExtractor,
        build_extractor,
        extractor_names,
    )
    from augment.fid.features import features_of
    from augment.fid.metrics import (
        FidKidResult,
        check_same_classes,
        fid_kid,
        kid_subset_size_for,
        score_per_class,
        score_sources,
    )
    from augment.fid.sources import FeatureSource, decode_rgb, list_images, source_size
    from augment.fid.standin import RandomConvExtractor
    from augment.fid.weights import (
        InceptionWeights,
        find_inception_weights,
        prepare_inception_weights,
    )

_EXPORTS = {
    "FidConfig": "config",
    "FeatureCache": "cache",
    "user_cache_dir": "cache",
    "EXTRACTORS": "extractor",
    "INCEPTION": "extractor",
    "Extractor": "extractor",
    "InceptionExtractor": "extractor",
    "build_extractor": "extractor",
    "extractor_names": "extractor",
    "features_of": "features",
    "FidKidResult": "metrics",
    "check_same_classes": "metrics",
    "fid_kid": "metrics",
    "kid_subset_size_for": "metrics",
    "score_per_class": "metrics",
    "score_sources": "metrics",
    "FeatureSource": "sources",
    "decode_rgb": "sources",
    "list_images": "sources",
    "source_size": "sources",
    "RandomConvExtractor": "standin",
    "InceptionWeights": "weights",
    "find_inception_weights": "weights",
    "prepare_inception_weights": "weights",
}

__all__ = [
    "EXTRACTORS",
    "Extractor",
    "FeatureCache",
    "FeatureSource",
    "FidConfig",
    "FidKidResult",
    "INCEPTION",
    "InceptionExtractor",
    "InceptionWeights",
    "RandomConvExtractor",
    "build_extractor",
    "check_same_classes",
    "decode_rgb",
    "extractor_names",
    "features_of",
    "fid_kid",
    "find_inception_weights",
    "kid_subset_size_for",
    "list_images",
    "prepare_inception_weights",
    "score_per_class",
    "score_sources",
    "source_size",
    "user_cache_dir",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'augment.fid' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"augment.fid.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
