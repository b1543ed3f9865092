"""The classifiers: ResNet-50 with pluggable attention (none, SE, CBAM) at one of the SE paper's
four placements (standard, pre, post, identity: :mod:`classify.models.placement`), small Vision
Transformers (``vit-tiny``, ``vit-small``) built on torchvision's, and torchvision's ViT-B/16
(``vit-b16``). ImageNet weights and other sources of initial weights: :mod:`classify.models.hub`
and :mod:`classify.models.transfer`; input normalisation inside the model:
:mod:`classify.models.input_norm`.

Public API: :class:`ModelConfig`, :func:`build_model`, :func:`model_names`, :data:`MODEL_REGISTRY`;
profiling helpers live in :mod:`classify.models.profile`.
"""

from classify.models.config import ModelConfig
from classify.models.registry import (
    MODEL_REGISTRY,
    build_model,
    is_vit,
    model_names,
    validate_config,
)
from classify.names import RESNET_MODELS

__all__ = [
    "MODEL_REGISTRY",
    "RESNET_MODELS",
    "ModelConfig",
    "build_model",
    "is_vit",
    "model_names",
    "validate_config",
]
