"""The classifier family: ResNet-50 with pluggable residual-branch attention (none, SE, CBAM).

Public API: :class:`ModelConfig`, :func:`build_model`, :func:`model_names`, :data:`MODEL_REGISTRY`;
profiling helpers live in :mod:`classify.models.profile`.
"""

from classify.models.config import ModelConfig
from classify.models.registry import MODEL_REGISTRY, build_model, model_names, validate_config

__all__ = ["MODEL_REGISTRY", "ModelConfig", "build_model", "model_names", "validate_config"]
