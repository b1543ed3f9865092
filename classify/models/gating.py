"""``x * gate(pool(x))`` (+ a residual): the one shape every block in attention.py shares.

SE scales channels by ``sigmoid(MLP(avgpool(x)))`` (Hu et al. 2018, arXiv:1709.01507); CBAM's
channel gate does the same over several poolings, its spatial gate scales positions by
``sigmoid(BN(conv([max_c x, mean_c x])))`` (Woo et al. 2018, arXiv:1807.06521). The maths is
exactly theirs; what is written for speed is how the activation-sized tensors are touched, since
these gates are memory-bound: on 2 CPU cores one pass over a block's activation costs about what
the gate's small MLP costs, and plain autograd makes ~16 of them (and allocates as many
activation-sized temporaries) per CBAM gate.

- Training goes through one autograd Function per gate (:class:`_PooledGate`). Its forward pools,
  runs the small gate network on detached copies of the pooled descriptors (recorded by autograd
  as a graph of its own, as ``torch.utils.checkpoint`` does) and returns ``x * scale + residual``
  in one ``addcmul``. Its backward touches the activation three or four times: ``sum(grad * x)``
  for the gate network's input (a ``vecdot``, no temporary, where the summed dims are
  contiguous), ``grad * scale`` plus every mean's broadcast gradient (one ``addcmul`` for the
  spatial gate; a product and an in-place add for channel gates, where that is 2x faster), and
  each max's gradient added in place at its argmax (N x C values, not an activation-sized zero
  tensor and an addition).
  Autograd's backward of the gate network then gives the descriptors' and parameters' gradients.
- Max pools use the index ``torch.max`` returns (the first maximum), so ties get the gradient as
  in the authors' code (``max_pool2d`` / ``torch.max``). On CPU, index-returning ``max`` is 10-30x
  slower than ``amax`` over the channels of an NCHW map, so over many rows it searches in two levels
  (:func:`_first_max`), which finds the same index.
- Without gradients (eval, ``torch.no_grad``), and on maps under FUSED_MIN_POSITIONS positions
  (where the Function's fixed cost outweighs the passes it saves), the plain forward runs, under
  plain autograd when training (its max still sends the gradient to the first maximum).

Measured with bench/train_throughput.py --settings 64px quick --threads 1 (training step, batch
32; 1 thread on a 2-core VM, noisy: +-10 points between runs of the same code): CBAM's cost over
plain ResNet-50 at the quick preset (32 px, width 0.25, small stem) went from +48..56% to +28..42%
(median of three runs ~+31%); at 64 px (ImageNet stem, width 1) it stayed at +17..20%: there the
16x16 maps got ~2x cheaper but most of the cost sits on the 4x4 and 2x2 maps (the channel MLP on
1024-2048 channels, index-returning max over 4-16 positions, per-call overhead), which this does
not change. SE stayed within noise of before. ``torch.compile`` of the same gate was measured
too: 24 s to compile the first shape and ~8 s per further shape, for a block ~12% faster than
plain autograd (slower than this), so it cannot pay back within a quick-preset run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

SPACE = "space"  # pool over H, W: descriptors B x C x 1 x 1, one scale per channel
CHANNELS = "channels"  # pool over C: descriptors B x 1 x H x W, one scale per position
_DIMS = {SPACE: (2, 3), CHANNELS: (1,)}
# Two-level argmax from this many rows (output elements) on; below it torch.max is faster.
TWO_LEVEL_MIN_ROWS = 1024
# Maps with fewer positions train through plain autograd: there the few passes saved cost less
# than the Function's fixed overhead (a nested autograd call per gate, ~0.2 ms).
FUSED_MIN_POSITIONS = 64

Gate = Callable[[list[Tensor]], Tensor]  # pooled descriptors (dims kept) -> scale broadcast to x


def _count(x: Tensor, over: str) -> int:
    return math.prod(x.shape[d] for d in _DIMS[over])


def _space_rows(t: Tensor) -> tuple[Tensor, int]:
    """``t`` with H, W flattened into one dim, as a view where the layout allows: (N, C, HW) and
    dim 2 for NCHW, (N, HW, C) and dim 1 for channels_last; otherwise an (N, C, HW) copy."""
    n, c, h, w = t.shape
    if not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return t.permute(0, 2, 3, 1).view(n, h * w, c), 1
    return t.reshape(n, c, h * w), 2


def _chunks(n: int, contiguous: bool) -> int:
    """How many chunks :func:`_first_max` splits a reduced dim of size ``n`` into (1: don't)."""
    if contiguous:  # short contiguous runs keep amax vectorised; only worth it on long rows
        return n // 32 if n >= 512 and n % 32 == 0 else 1
    return max((k for k in range(1, math.isqrt(n) + 1) if n % k == 0), default=1)


def _first_max(x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
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
    return x.sum(dim=_DIMS[over], keepdim=True) * (1.0 / _count(x, over)), None


def _max(x: Tensor, over: str) -> tuple[Tensor, Tensor]:
    if over == CHANNELS:
        return _first_max(x, 1)
    rows, dim = _space_rows(x)
    values, index = _first_max(rows, dim)
    n, c = x.shape[:2]
    return values.view(n, c, 1, 1), index.view(n, c, 1)  # index into H*W, per (n, c)


def _max_backward(
    dx: Tensor, x: Tensor, value: Tensor, index: Tensor | None, grad: Tensor, over: str
) -> None:
    assert index is not None
    if over == CHANNELS:
        dx.scatter_(1, index, dx.gather(1, index) + grad)  # one maximum per row: no collisions
        return
    rows, dim = _space_rows(dx)
    n, c = grad.shape[:2]
    at = index if dim == 2 else index.view(n, 1, c)
    rows.scatter_(dim, at, rows.gather(dim, at) + grad.view(at.shape))


def _lp(x: Tensor, over: str) -> tuple[Tensor, None]:
    # Same value as F.lp_pool2d(x, 2, (H, W)) over space; the gradient below is zero (not NaN)
    # where a whole row is zero, as torch.linalg.vector_norm's.
    return torch.linalg.vector_norm(x, ord=2, dim=_DIMS[over], keepdim=True), None


def _lp_backward(
    dx: Tensor, x: Tensor, value: Tensor, _s: Tensor | None, grad: Tensor, over: str
) -> None:
    dx.addcmul_(x, torch.where(value > 0, grad / value, torch.zeros_like(grad)))


def _lse(x: Tensor, over: str) -> tuple[Tensor, None]:
    # The CBAM authors' logsumexp_2d: log(sum(exp)), not a mean, computed stably.
    return torch.logsumexp(x, dim=_DIMS[over], keepdim=True), None


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
    rows, dim = _space_rows(x)
    return rows.max(dim, keepdim=True).values.view(x.shape[0], x.shape[1], 1, 1)


def _product_sum(grad: Tensor, x: Tensor, over: str) -> Tensor:
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
    return (grad * x).sum(dim=_DIMS[over], keepdim=True)


class _PooledGate(torch.autograd.Function):
    """``x * gate(pools(x)) (+ residual)`` with the activation-sized work written by hand (module
    docstring); the gate network's own backward is autograd's."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: Tensor,
        residual: Tensor | None,
        pools: tuple[str, ...],
        over: str,
        gate: Gate,
        *params: Tensor,
    ) -> Tensor:
        pooled = [POOLINGS[p].forward(x, over) for p in pools]
        leaves = [value.detach().requires_grad_() for value, _ in pooled]
        with torch.enable_grad():
            scale = gate(leaves)
        trainable = [p for p in params if p.requires_grad]
        ctx.graph = (scale, leaves, trainable)  # type: ignore[attr-defined]
        ctx.pools, ctx.over = pools, over  # type: ignore[attr-defined]
        ctx.extras = [extra for _, extra in pooled]  # type: ignore[attr-defined]
        ctx.param_mask = [p.requires_grad for p in params]  # type: ignore[attr-defined]
        ctx.residual_dtype = None if residual is None else residual.dtype  # type: ignore[attr-defined]
        scale = scale.detach()
        ctx.save_for_backward(x, scale, *(value for value, _ in pooled))
        return x * scale if residual is None else torch.addcmul(residual, x, scale)

    @staticmethod
    @once_differentiable
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: Tensor
    ) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, scale, *values = ctx.saved_tensors  # type: ignore[attr-defined]
        graph_scale, leaves, trainable = ctx.graph  # type: ignore[attr-defined]
        pools, over = ctx.pools, ctx.over  # type: ignore[attr-defined]
        dscale = _product_sum(grad, x, over).to(scale.dtype)
        # The gate network's small graph lives as long as this node (retained for a second
        # backward through a retained outer graph, as gradcheck does).
        grads = torch.autograd.grad(
            graph_scale, [*leaves, *trainable], dscale, retain_graph=True, allow_unused=True
        )
        dvalues, dparams = grads[: len(leaves)], iter(grads[len(leaves) :])
        count = _count(x, over)
        spread = [
            d for p, d in zip(pools, dvalues, strict=True) if POOLINGS[p].uniform and d is not None
        ]
        dtype = torch.promote_types(grad.dtype, scale.dtype)
        nhwc = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        layout = torch.channels_last if nhwc else torch.contiguous_format  # _space_rows: a view
        dx = torch.empty_like(x, dtype=dtype, memory_format=layout)
        mean_grad = sum(spread[1:], spread[0]) * (1.0 / count) if spread else None
        if mean_grad is not None and over == CHANNELS:
            torch.addcmul(mean_grad, grad, scale, out=dx)
        else:  # addcmul with N x C x 1 x 1 operands is ~2x slower than a product and an add
            torch.mul(grad, scale, out=dx)
            if mean_grad is not None:
                dx += mean_grad
        for p, d, value, extra in zip(pools, dvalues, values, ctx.extras, strict=True):  # type: ignore[attr-defined]
            if d is not None and not POOLINGS[p].uniform:
                POOLINGS[p].backward(dx, x, value, extra, d.to(dtype), over)
        dresidual = None if ctx.residual_dtype is None else grad.to(ctx.residual_dtype)  # type: ignore[attr-defined]
        param_grads = [next(dparams) if needed else None for needed in ctx.param_mask]  # type: ignore[attr-defined]
        return (dx.to(x.dtype), dresidual, None, None, None, *param_grads)


def pooled_gate(
    x: Tensor,
    pools: Sequence[str],
    over: str,
    gate: Gate,
    params: Sequence[Tensor] = (),
    residual: Tensor | None = None,
) -> Tensor:
    """``x * gate([pool(x, p, over) for p in pools])``, plus ``residual`` when given (one fused
    ``addcmul``). ``params`` are the gate network's parameters (they must be passed for their
    gradients to arrive when autograd records this call)."""
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad
        or (residual is not None and residual.requires_grad)
        or any(p.requires_grad for p in params)
    )
    if needs_grad and x.shape[2] * x.shape[3] >= FUSED_MIN_POSITIONS:
        return _PooledGate.apply(x, residual, tuple(pools), over, gate, *params)
    scale = gate([pool(x, p, over) for p in pools])
    return x * scale if residual is None else torch.addcmul(residual, x, scale)
