"""The attention blocks a residual unit can hold, by name: ``none``, ``se``, ``cbam``.

Every block takes ``channels`` first (as timm's ``create_attn`` expects) and returns a tensor shaped
like its input, so :func:`create_attention` can build any of them from a name and the ResNet never
names a block itself. A new attention type is one small module plus one registry line.

- ``se``   — Squeeze-and-Excitation, Hu et al. 2018 (:mod:`classify.models.se`).
- ``cbam`` — Convolutional Block Attention Module, Woo et al. 2018 (:mod:`classify.models.cbam`),
  with the pool types avg, max, lp and lse for its channel gate.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from classify.models.cbam import CBAM
from classify.models.se import SqueezeExcite

ATTENTION_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "se": SqueezeExcite,
    "cbam": CBAM,
}


def create_attention(name: str | None, channels: int, **kwargs: object) -> nn.Module:
    """Build attention ``name`` for ``channels`` (``None`` or ``"none"``: identity)."""
    if name is None or name == "none":
        return nn.Identity()
    if name not in ATTENTION_REGISTRY:
        raise ValueError(f"attention {name!r}: choose one of none, {', '.join(ATTENTION_REGISTRY)}")
    return ATTENTION_REGISTRY[name](channels, **kwargs)
