"""What a Vision Transformer's class token attends to: per-layer, per-head attention weights read
through hooks, head fusion, and attention rollout (Abnar & Zuidema 2020, "Quantifying Attention
Flow in Transformers").

:class:`AttentionRecorder` hooks every ``nn.MultiheadAttention`` of a model: a forward pre-hook asks
the library's own module for its per-head weights (``need_weights=True,
average_attn_weights=False``) and a forward hook stores them. The blocks' ``forward`` methods are not
replaced, any depth and head count works, and the hooks are removed when the ``with`` block ends
(also on error). The weights are what ``softmax(QK^T / sqrt(d))`` gave, after attention dropout
(none at eval time), so every row sums to 1 over all tokens, the class token included.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from classify.names import HEAD_FUSIONS

# nn.MultiheadAttention.forward's parameters after (query, key, value), in order.
_MHA_POSITIONAL = ("key_padding_mask", "need_weights", "attn_mask", "average_attn_weights")


def attention_modules(model: nn.Module) -> list[nn.MultiheadAttention]:
    """The model's self-attention modules, first block to last."""
    found = getattr(model, "attention_modules", None)
    modules = found() if callable(found) else None
    if modules is None:
        modules = [m for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
    return list(modules)


class AttentionRecorder:
    """``with AttentionRecorder(model) as rec: model(x)``; then ``rec.weights`` holds one
    B x heads x tokens x tokens tensor per attention module (detached, on the model's device) and
    :meth:`stacked` a B x layers x heads x tokens x tokens tensor."""

    def __init__(self, model: nn.Module) -> None:
        self.modules = attention_modules(model)
        if not self.modules:
            raise ValueError(f"{type(model).__name__} has no nn.MultiheadAttention module")
        self.weights: list[Tensor] = []
        self._handles: list[Any] = []

    @staticmethod
    def _want_weights(
        _module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        kwargs = dict(kwargs)
        for name, value in zip(_MHA_POSITIONAL, args[3:], strict=False):
            kwargs[name] = value
        kwargs["need_weights"] = True
        kwargs["average_attn_weights"] = False
        return args[:3], kwargs

    def _store(self, _module: nn.Module, _args: Any, output: Any) -> None:
        self.weights.append(output[1].detach())

    def __enter__(self) -> AttentionRecorder:
        self.weights = []
        for module in self.modules:
            self._handles.append(
                module.register_forward_pre_hook(self._want_weights, with_kwargs=True)
            )
            self._handles.append(module.register_forward_hook(self._store))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def stacked(self) -> Tensor:
        """B x layers x heads x T x T (the last forward pass's weights)."""
        if len(self.weights) < len(self.modules):
            raise RuntimeError("no forward pass was recorded")
        return torch.stack(self.weights[-len(self.modules) :], dim=1)


@torch.no_grad()
def record_attention(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """(logits, attention B x layers x heads x T x T) of one eval-mode forward pass of ``x``."""
    was_training = model.training
    model.eval()
    try:
        with AttentionRecorder(model) as recorder:
            logits = model(x)
        return logits, recorder.stacked()
    finally:
        model.train(was_training)


def fuse_heads(attention: Tensor, fusion: str = "mean") -> Tensor:
    """... x heads x T x T -> ... x T x T by the mean, max or min over heads."""
    if fusion == "mean":
        return attention.mean(dim=-3)
    if fusion == "max":
        return attention.amax(dim=-3)
    if fusion == "min":
        return attention.amin(dim=-3)
    raise ValueError(f"head fusion {fusion!r}: choose one of {', '.join(HEAD_FUSIONS)}")


def cls_to_patches(attention: Tensor, grid: int) -> Tensor:
    """The class token's attention row over the patch tokens, as ... x grid x grid (token 0 is the
    class token; its attention to itself is dropped, so a row no longer sums to exactly 1)."""
    row = attention[..., 0, 1:]
    return row.reshape(*row.shape[:-1], grid, grid)


def attention_rollout(
    attention: Tensor, head_fusion: str = "mean", discard_ratio: float = 0.0
) -> Tensor:
    """Attention rollout of B x layers x heads x T x T weights -> B x T x T.

    Per layer: fuse the heads; optionally zero the lowest ``discard_ratio`` fraction of the fused
    weights (never the class token's own entry; the vit-explain recipe, which sharpens the map);
    add the identity for the residual path and renormalise rows (A' = (A + I) / 2, rows summing to
    1); multiply the layers in order, first layer rightmost. Each row of the result is a
    probability distribution over input tokens.
    """
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"discard ratio {discard_ratio}: must be in [0, 1)")
    batch, layers, _heads, tokens, _ = attention.shape
    eye = torch.eye(tokens, dtype=torch.float64, device=attention.device)
    result = eye.expand(batch, tokens, tokens).clone()
    for layer in range(layers):
        fused = fuse_heads(attention[:, layer].to(torch.float64), head_fusion)
        k = int(tokens * tokens * discard_ratio)
        if k:
            flat = fused.reshape(batch, -1)
            keep = torch.ones_like(flat, dtype=torch.bool)
            keep.scatter_(1, flat.topk(k, dim=1, largest=False).indices, False)
            keep[:, 0] = True  # the class token's attention to itself stays
            fused = (flat * keep).reshape(batch, tokens, tokens)
        mixed = (fused + eye) / 2
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        result = mixed @ result
    return result.to(attention.dtype)


def rollout_map(
    attention: Tensor, grid: int, head_fusion: str = "mean", discard_ratio: float = 0.0
) -> Tensor:
    """B x grid x grid: how the class token's rolled-out attention spreads over the patches,
    renormalised to a probability distribution over patches (each map sums to 1)."""
    rolled = attention_rollout(attention, head_fusion, discard_ratio)
    patches = rolled[:, 0, 1:]
    patches = patches / patches.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    return patches.reshape(-1, grid, grid)


def layer_map(attention: Tensor, grid: int, layer: int = -1, head_fusion: str = "mean") -> Tensor:
    """B x grid x grid: the class token's head-fused attention over the patches in ``layer``."""
    return cls_to_patches(fuse_heads(attention[:, layer], head_fusion), grid)


def to_unit_maps(maps: Tensor, size: int) -> Tensor:
    """B x g x g token maps -> B x size x size maps in [0, 1] (bilinear, each divided by its max):
    the form Grad-CAM maps have, for overlays and the faithfulness metrics."""
    up = nn.functional.interpolate(
        maps[:, None].float(), size=(size, size), mode="bilinear", align_corners=False
    )[:, 0]
    low = up.amin(dim=(1, 2), keepdim=True)
    high = up.amax(dim=(1, 2), keepdim=True)
    return (up - low) / (high - low).clamp_min(1e-12)


def check_layer(layer: int, depth: int) -> int:
    """``layer`` (negative counts from the end) as an index in [0, depth)."""
    if not -depth <= layer < depth:
        raise IndexError(f"layer {layer}: the model has {depth} blocks (use 0..{depth - 1} or -1)")
    return layer % depth
