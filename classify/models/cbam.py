"""CBAM: Woo et al. 2018, "CBAM: Convolutional Block Attention Module" (ECCV 2018;
arXiv:1807.06521), built as timm's ``layers/cbam.py`` builds it, with the pool types and layer
choices of the authors' code (github.com/Jongchan/attention-module, ``MODELS/cbam.py``).

- Channel attention (eq. 2): ``M_c = sigmoid(sum over pool types of MLP(pool_hw(x)))``, one MLP
  (reduction 16, hidden width as SE's: :func:`classify.models.se.hidden_channels`) shared by every
  pooled descriptor. Pool types: ``avg`` and ``max`` (the paper's), ``lp`` (2-norm) and ``lse``
  (log-sum-exp) from the authors' code.
- Spatial attention (eq. 3): ``M_s = sigmoid(BN(conv7x7([max_c y, mean_c y])))``, the conv without
  bias, BatchNorm and no ReLU, as in the authors' code (timm: conv + BN too).
- CBAM (eq. 1): ``y = x * M_c(x)``, then ``y * M_s(y)``.

Max pools use ``torch.max`` (not ``amax``), so among tied maxima the first gets the whole gradient,
as with the authors' ``max_pool2d`` (``amax`` would share it out); the values are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from classify.models.se import hidden_channels

SPACE = (2, 3)  # pool over H, W: one descriptor per channel (the channel gate)
CHANNELS = (1,)  # pool over C: one descriptor per position (the spatial gate)


def _avg(x: Tensor, dims: tuple[int, ...]) -> Tensor:
    return x.mean(dims, keepdim=True)


def _max(x: Tensor, dims: tuple[int, ...]) -> Tensor:
    if dims == CHANNELS:
        return x.max(1, keepdim=True).values
    return x.flatten(2).max(2, keepdim=True).values.unsqueeze(-1)


def _lp(x: Tensor, dims: tuple[int, ...]) -> Tensor:
    # The authors' F.lp_pool2d(x, 2, (H, W)); the norm's gradient is zero (not NaN) on a zero row.
    return torch.linalg.vector_norm(x, ord=2, dim=dims, keepdim=True)


def _lse(x: Tensor, dims: tuple[int, ...]) -> Tensor:
    # The authors' logsumexp_2d: log(sum(exp)), not a mean, computed stably.
    return torch.logsumexp(x, dim=dims, keepdim=True)


POOLINGS: dict[str, Callable[[Tensor, tuple[int, ...]], Tensor]] = {
    "avg": _avg,
    "max": _max,
    "lp": _lp,
    "lse": _lse,
}


def pool(x: Tensor, kind: str, over: tuple[int, ...]) -> Tensor:
    """One descriptor of ``x`` (dims kept): ``kind`` (a POOLINGS key) over SPACE or CHANNELS."""
    return POOLINGS[kind](x, over)


class ChannelGate(nn.Module):
    """CBAM channel attention: one shared MLP on each pooled descriptor, outputs summed, sigmoid."""

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

    def forward(self, x: Tensor) -> Tensor:
        logits = sum(self.mlp(pool(x, p, SPACE).flatten(1)) for p in self.pool_types)
        return x * torch.sigmoid(logits)[:, :, None, None]


class SpatialGate(nn.Module):
    """CBAM spatial attention: [max_c, mean_c] -> 7x7 conv (no bias) -> BatchNorm -> sigmoid.

    The authors' BatchNorm here uses momentum 0.01; we keep PyTorch's 0.1 so the running statistics
    settle within the few hundred steps a small dataset trains for (it only affects eval mode).
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(1)

    def forward(self, x: Tensor) -> Tensor:
        # (max, mean) in this order, as the authors' ChannelPool, so their conv weights would load.
        pooled = torch.cat([pool(x, "max", CHANNELS), pool(x, "avg", CHANNELS)], dim=1)
        return x * torch.sigmoid(self.bn(self.conv(pooled)))


class CBAM(nn.Module):
    """CBAM: the channel gate, then the spatial gate (``spatial=False``: the channel gate alone)."""

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

    def forward(self, x: Tensor) -> Tensor:
        x = self.channel_gate(x)
        return x if self.spatial_gate is None else self.spatial_gate(x)
