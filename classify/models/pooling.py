"""The poolings of the attention gates, on torch ops: a descriptor per (n, c) over H x W
(``SPACE``: SE, CBAM's channel gate) or per position over C (``CHANNELS``: CBAM's spatial gate).

Mean, max (with the index of the first maximum, as ``torch.max`` and the CBAM authors'
``max_pool2d`` give it), lp (2-norm) and lse (log-sum-exp) as in Woo et al. 2018
(arXiv:1807.06521) and the authors' code; each with a forward that keeps what its backward needs
and a backward that adds its gradient into ``dx`` in place (used by
:class:`classify.models.gating._PooledGate`). On CPU, index-returning ``max`` is 10-30x slower than
``amax`` over the channels of an NCHW map, so over many rows it searches in two levels
(:func:`first_max`), which finds the same index.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

SPACE = "space"  # pool over H, W: descriptors B x C x 1 x 1, one scale per channel
CHANNELS = "channels"  # pool over C: descriptors B x 1 x H x W, one scale per position
DIMS = {SPACE: (2, 3), CHANNELS: (1,)}
# Two-level argmax from this many rows (output elements) on; below it torch.max is faster.
TWO_LEVEL_MIN_ROWS = 1024


def count(x: Tensor, over: str) -> int:
    return math.prod(x.shape[d] for d in DIMS[over])


def space_rows(t: Tensor) -> tuple[Tensor, int]:
    """``t`` with H, W flattened into one dim, as a view where the layout allows: (N, C, HW) and
    dim 2 for NCHW, (N, HW, C) and dim 1 for channels_last; otherwise an (N, C, HW) copy."""
    n, c, h, w = t.shape
    if not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return t.permute(0, 2, 3, 1).view(n, h * w, c), 1
    return t.reshape(n, c, h * w), 2


def _chunks(n: int, contiguous: bool) -> int:
    """How many chunks :func:`first_max` splits a reduced dim of size ``n`` into (1: don't)."""
    if contiguous:  # short contiguous runs keep amax vectorised; only worth it on long rows
        return n // 32 if n >= 512 and n % 32 == 0 else 1
    return max((k for k in range(1, math.isqrt(n) + 1) if n % k == 0), default=1)


def first_max(x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """``x.max(dim, keepdim=True)`` (values, first index); on CPU over many rows, in two levels:
    chunk maxima with ``amax`` (vectorised, where index-returning ``max`` is not), ``torch.max``
    over the chunk maxima, then inside the winning chunk only. The first chunk holding the maximum
    holds its first index, so the result is ``torch.max``'s."""
    n = x.shape[dim]
    chunks = _chunks(n, contiguous=x.stride(dim) == 1)
    if x.device.type != "cpu" or chunks < 4 or x.numel() // n < TWO_LEVEL_MIN_ROWS:
        values, index = x.max(dim, keepdim=True)
        return values, index
    split = x.unflatten(dim, (chunks, n // chunks))
    values, which = split.amax(dim + 1).max(dim, keepdim=True)
    shape = list(split.shape)
    shape[dim] = 1
    winner = split.gather(dim, which.unsqueeze(dim + 1).expand(shape))
    inner = winner.max(dim + 1).indices
    return values, which * (n // chunks) + inner


@dataclass(frozen=True)
class Pooling:
    """One descriptor: ``forward(x, over)`` -> (value with dims kept, what backward needs);
    ``backward(dx, x, value, saved, grad, over)`` adds the descriptor's gradient into ``dx`` in
    place. ``uniform`` poolings (the mean) instead spread ``grad / count`` over every position,
    which the gate folds into its one ``addcmul``."""

    forward: Callable[[Tensor, str], tuple[Tensor, Tensor | None]]
    backward: Callable[[Tensor, Tensor, Tensor, Tensor | None, Tensor, str], None]
    uniform: bool = False


def _avg(x: Tensor, over: str) -> tuple[Tensor, None]:
    # sum * (1/n): the same value as mean, and it takes the fused route above.
    return x.sum(dim=DIMS[over], keepdim=True) * (1.0 / count(x, over)), None


def _max(x: Tensor, over: str) -> tuple[Tensor, Tensor]:
    if over == CHANNELS:
        return first_max(x, 1)
    rows, dim = space_rows(x)
    values, index = first_max(rows, dim)
    n, c = x.shape[:2]
    return values.view(n, c, 1, 1), index.view(n, c, 1)  # index into H*W, per (n, c)


def _max_backward(
    dx: Tensor, x: Tensor, value: Tensor, index: Tensor | None, grad: Tensor, over: str
) -> None:
    assert index is not None
    if over == CHANNELS:
        dx.scatter_(1, index, dx.gather(1, index) + grad)  # one maximum per row: no collisions
        return
    rows, dim = space_rows(dx)
    n, c = grad.shape[:2]
    at = index if dim == 2 else index.view(n, 1, c)
    rows.scatter_(dim, at, rows.gather(dim, at) + grad.view(at.shape))


def _lp(x: Tensor, over: str) -> tuple[Tensor, None]:
    # Same value as F.lp_pool2d(x, 2, (H, W)) over space; the gradient below is zero (not NaN)
    # where a whole row is zero, as torch.linalg.vector_norm's.
    return torch.linalg.vector_norm(x, ord=2, dim=DIMS[over], keepdim=True), None


def _lp_backward(
    dx: Tensor, x: Tensor, value: Tensor, _s: Tensor | None, grad: Tensor, over: str
) -> None:
    dx.addcmul_(x, torch.where(value > 0, grad / value, torch.zeros_like(grad)))


def _lse(x: Tensor, over: str) -> tuple[Tensor, None]:
    # The CBAM authors' logsumexp_2d: log(sum(exp)), not a mean, computed stably.
    return torch.logsumexp(x, dim=DIMS[over], keepdim=True), None


def _lse_backward(
    dx: Tensor, x: Tensor, value: Tensor, _s: Tensor | None, grad: Tensor, over: str
) -> None:
    dx.addcmul_(torch.exp(x - value), grad)


def _no_backward(*_args: object) -> None:
    return None


POOLINGS: dict[str, Pooling] = {
    "avg": Pooling(_avg, _no_backward, uniform=True),
    "max": Pooling(_max, _max_backward),
    "lp": Pooling(_lp, _lp_backward),
    "lse": Pooling(_lse, _lse_backward),
}


def pool(x: Tensor, kind: str, over: str) -> Tensor:
    """One descriptor with dims kept: ``avg``, ``max``, ``lp`` (2-norm) or ``lse`` (log-sum-exp)
    over ``SPACE`` (H, W) or ``CHANNELS`` (C), differentiable by plain autograd (a max sends its
    gradient to the first maximum, as in the fused path)."""
    if kind != "max":
        return POOLINGS[kind].forward(x, over)[0]
    if over == CHANNELS:
        return x.max(dim=1, keepdim=True).values
    if not torch.is_grad_enabled():
        return x.amax(dim=(2, 3), keepdim=True)
    rows, dim = space_rows(x)
    return rows.max(dim, keepdim=True).values.view(x.shape[0], x.shape[1], 1, 1)


def product_sum(grad: Tensor, x: Tensor, over: str) -> Tensor:
    """``(grad * x).sum(over's dims, keepdim=True)``, without the temporary where both are laid out
    with the summed dims contiguous (space in NCHW, channels in channels_last)."""
    n, c, h, w = x.shape
    dtype = torch.promote_types(grad.dtype, x.dtype)  # vecdot wants one dtype (autocast mixes)
    grad, x = grad.to(dtype), x.to(dtype)
    if over == SPACE and x.is_contiguous() and grad.is_contiguous():
        return torch.linalg.vecdot(grad.view(n, c, h * w), x.view(n, c, h * w)).view(n, c, 1, 1)
    nhwc = torch.channels_last
    if (
        over == CHANNELS
        and x.is_contiguous(memory_format=nhwc)
        and grad.is_contiguous(memory_format=nhwc)
    ):
        rows = (t.permute(0, 2, 3, 1).reshape(n, h * w, c) for t in (grad, x))
        return torch.linalg.vecdot(*rows).view(n, 1, h, w)
    return (grad * x).sum(dim=DIMS[over], keepdim=True)
