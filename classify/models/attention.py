"""Channel/spatial attention blocks for a residual unit, and their registry.

Every block takes ``channels`` first (as timm's ``create_attn`` expects), returns a tensor shaped like
its input, and is looked up by name in :data:`ATTENTION_REGISTRY`. A new attention type is one small
class plus one registry line; the ResNet never names a block itself.

- ``se``   — Squeeze-and-Excitation, Hu et al. 2018, "Squeeze-and-Excitation Networks"
  (arXiv:1709.01507): global average pool -> FC (reduction 16) -> ReLU -> FC -> sigmoid -> scale.
- ``cbam`` — Convolutional Block Attention Module, Woo et al. 2018 (arXiv:1807.06521), following the
  authors' code (github.com/Jongchan/attention-module, ``MODELS/cbam.py``): a channel gate (one shared
  MLP, reduction 16, over several global poolings, summed, sigmoid) then a spatial gate (channel-wise
  max and mean -> 7x7 conv without bias -> BatchNorm -> sigmoid, no ReLU).

Hidden width of the bottleneck MLPs: ``max(channels // reduction, MIN_HIDDEN)``. At width 1 every
ResNet-50 stage has >= 256 channels, so the floor never applies and parameter counts match the papers;
it only keeps tiny-width models (e.g. 32 channels -> 2 hidden units) from a degenerate 1-2 unit MLP.

Every gate is ``x * gate(pool(x))`` (:func:`classify.models.gating.pooled_gate`), which does the
activation-sized work of forward and backward in a few fused passes (these blocks are memory-bound);
the classes here only hold the small gate networks, in the papers' form. Each block's
``forward(x, residual)`` returns ``gated x + residual`` in one pass, and every placement of
:mod:`classify.models.placement` can use it. Training on the CPU, CBAM runs both gates in one
Function (:mod:`classify.models.cbam_fused`) that never writes the channel gate's output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from classify.models.cbam_fused import fused_cbam
from classify.models.gating import CHANNELS, POOLINGS, SPACE, pooled_gate

MIN_HIDDEN = 4


def hidden_channels(channels: int, reduction: int) -> int:
    """Units of the squeeze MLP: the paper's ``channels // reduction``, floored at MIN_HIDDEN."""
    return max(channels // reduction, MIN_HIDDEN)


class SqueezeExcite(nn.Module):
    """SE block (Hu et al. 2018): ``x * sigmoid(W2 relu(W1 avgpool(x)))``, reduction 16."""

    fuses_residual = True  # forward(x, residual) returns x * gate + residual

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = hidden_channels(channels, reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, channels)

    def gate(self, pooled: list[Tensor]) -> Tensor:
        (squeezed,) = pooled
        excitation = self.fc2(self.act(self.fc1(squeezed.flatten(1))))
        return torch.sigmoid(excitation)[:, :, None, None]

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        return pooled_gate(x, ("avg",), SPACE, self.gate, tuple(self.parameters()), residual)


class ChannelGate(nn.Module):
    """CBAM channel attention: one shared MLP applied to each pooled descriptor, outputs summed,
    sigmoid. Pool types as in the authors' code: avg, max, lp (2-norm), lse (log-sum-exp)."""

    def __init__(
        self, channels: int, reduction: int = 16, pool_types: Sequence[str] = ("avg", "max")
    ) -> None:
        super().__init__()
        unknown = [p for p in pool_types if p not in POOLINGS]
        if not pool_types or unknown:
            raise ValueError(
                f"CBAM pool types {list(pool_types)}: use a non-empty subset of {list(POOLINGS)}"
            )
        self.pool_types = tuple(pool_types)
        hidden = hidden_channels(channels, reduction)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels)
        )

    def gate(self, pooled: list[Tensor]) -> Tensor:
        batch = pooled[0].shape[0]
        # One MLP call on the stacked descriptors instead of one per pool type: same maths (the
        # MLP is shared, so summing afterwards is exactly the paper's M_c), fewer small kernels.
        logits = self.mlp(torch.cat([p.flatten(1) for p in pooled], dim=0))
        logits = logits.view(len(pooled), batch, -1).sum(dim=0)
        return torch.sigmoid(logits)[:, :, None, None]

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        params = tuple(self.parameters())
        return pooled_gate(x, self.pool_types, SPACE, self.gate, params, residual)


class SpatialGate(nn.Module):
    """CBAM spatial attention: [max_c, mean_c] -> 7x7 conv (no bias) -> BatchNorm -> sigmoid.

    The authors' BatchNorm here uses momentum 0.01; we keep PyTorch's 0.1 so the running statistics
    settle within the few hundred steps a small dataset trains for (it only affects eval mode).
    """

    # (max, mean) order as in the authors' ChannelPool, so their weights would load.
    POOLS = ("max", "avg")

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(1)

    def gate(self, pooled: list[Tensor]) -> Tensor:
        # The N x 2 x H x W [max, mean] map is built channels_last (stacked on a last dim): the same
        # values as torch.cat(pooled, 1), but oneDNN's 7x7 conv forward + backward on it is 2-3x
        # faster at 16-32 px on CPU than on the NCHW map.
        stacked = torch.stack([p.squeeze(1) for p in pooled], dim=-1).permute(0, 3, 1, 2)
        return torch.sigmoid(self.bn(self.conv(stacked)))

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        params = tuple(self.parameters())
        return pooled_gate(x, self.POOLS, CHANNELS, self.gate, params, residual)


class CBAM(nn.Module):
    """CBAM (Woo et al. 2018): channel gate, then spatial gate, applied in sequence."""

    fuses_residual = True  # forward(x, residual) returns the gated x + residual

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        pool_types: Sequence[str] = ("avg", "max"),
        spatial: bool = True,
    ) -> None:
        super().__init__()
        self.channel_gate = ChannelGate(channels, reduction, pool_types)
        self.spatial_gate = SpatialGate() if spatial else None

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        if self.spatial_gate is None:
            return self.channel_gate(x, residual)
        fused = fused_cbam(x, residual, self.channel_gate, self.spatial_gate)
        if fused is not None:  # training on the CPU: both gates in one Function (cbam_fused.py)
            return fused
        return self.spatial_gate(self.channel_gate(x), residual)


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
