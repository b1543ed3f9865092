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
  as a graph of its own, as ``torch.utils.checkpoint`` does) and returns ``x * scale + residual``.
  Its backward touches the activation a few times: ``sum(grad * x)`` for the gate network's
  input, ``grad * scale`` plus every mean's broadcast gradient, and each max's gradient added at
  its argmax; autograd's backward of the gate network gives the descriptors' and parameters'
  gradients.
- Those passes run on compiled CPU kernels (:mod:`classify.models.gate_native`: each pass one C
  loop, built on first use) for float32 NCHW CPU tensors with mean and max poolings, and on torch
  ops otherwise (CUDA, other dtypes and layouts, lp/lse poolings, no C compiler): ``addcmul``,
  ``vecdot`` where the summed dims are contiguous, in-place scatter of the max gradients.
  CBAM's two gates together have a Function of their own on the same kernels
  (:mod:`classify.models.cbam_fused`), which never writes the channel gate's output.
- Max pools use the index ``torch.max`` returns (the first maximum), so ties get the gradient as
  in the authors' code (``max_pool2d`` / ``torch.max``). On CPU, index-returning ``max`` is 10-30x
  slower than ``amax`` over the channels of an NCHW map, so the torch path searches in two levels
  over many rows (:func:`classify.models.pooling.first_max`), which finds the same index.
- Without gradients (eval, ``torch.no_grad``), and on maps under NATIVE_MIN_POSITIONS (kernels) or
  FUSED_MIN_POSITIONS (torch ops) positions, where the Function's fixed cost outweighs the passes
  it saves, the plain forward runs, under plain autograd when training (its max still sends the
  gradient to the first maximum).

Cost over plain ResNet-50 (bench/train_throughput.py --settings 64px quick --threads 1 --gates
both: training step, batch 32, 1 thread, both paths in the same interleaved rounds; +-3-5 points
between runs): CBAM +11% at 64 px and +23% at the quick preset with the kernels and the fused CBAM,
against +18% and +38% on torch ops (plain autograd: +48..56% at the quick preset); SE the same on
both paths (+6% / +11%). ``torch.compile`` of one gate was measured too: 24 s to compile the
first shape and ~8 s per further shape, for a block ~12% faster than plain autograd, so it cannot
pay back within a quick-preset run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from classify.models import gate_native
from classify.models.gate_native import GateKernels
from classify.models.pooling import CHANNELS, POOLINGS, SPACE, count, pool, product_sum

__all__ = ["CHANNELS", "POOLINGS", "SPACE", "pool", "pooled_gate"]

# Maps with fewer positions train through plain autograd: there the few passes saved cost less
# than the Function's fixed overhead (a nested autograd call per gate, ~0.2 ms).
FUSED_MIN_POSITIONS = 64
# With the compiled passes (classify/models/gate_native.py) the Function pays from 2 x 2 maps on.
NATIVE_MIN_POSITIONS = 4
NATIVE_POOLS = {"avg", "max"}  # what the compiled passes pool; others take the PyTorch path

Gate = Callable[[list[Tensor]], Tensor]  # pooled descriptors (dims kept) -> scale broadcast to x


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
        native: GateKernels | None,
        *params: Tensor,
    ) -> Tensor:
        ctx.native = native  # type: ignore[attr-defined]
        if native is not None:
            mean, top, arg = native.pool(x, over, "max" in pools)
            pooled = [(mean, None) if p == "avg" else (top, arg) for p in pools]
        else:
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
        if native is not None:
            return native.scale(x, scale, residual, over)
        return x * scale if residual is None else torch.addcmul(residual, x, scale)

    @staticmethod
    @once_differentiable
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: Tensor
    ) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, scale, *values = ctx.saved_tensors  # type: ignore[attr-defined]
        graph_scale, leaves, trainable = ctx.graph  # type: ignore[attr-defined]
        pools, over = ctx.pools, ctx.over  # type: ignore[attr-defined]
        native: GateKernels | None = ctx.native  # type: ignore[attr-defined]
        if native is not None:
            grad_in = grad.to(torch.float32).contiguous()
            dscale = native.dot(grad_in, x, over)
        else:
            dscale = product_sum(grad, x, over).to(scale.dtype)
        # The gate network's small graph lives as long as this node (retained for a second
        # backward through a retained outer graph, as gradcheck does).
        grads = torch.autograd.grad(
            graph_scale, [*leaves, *trainable], dscale, retain_graph=True, allow_unused=True
        )
        dvalues, dparams = grads[: len(leaves)], iter(grads[len(leaves) :])
        positions = count(x, over)
        dresidual = None if ctx.residual_dtype is None else grad.to(ctx.residual_dtype)  # type: ignore[attr-defined]
        param_grads = [next(dparams) if needed else None for needed in ctx.param_mask]  # type: ignore[attr-defined]
        if native is not None:
            by_pool = dict(zip(pools, dvalues, strict=True))
            dmean = None if by_pool.get("avg") is None else by_pool["avg"] * (1.0 / positions)
            arg = next((extra for extra in ctx.extras if extra is not None), None)  # type: ignore[attr-defined]
            dx = native.dx(grad_in, scale, dmean, by_pool.get("max"), arg, over)
            return (dx, dresidual, None, None, None, None, *param_grads)
        spread = [
            d for p, d in zip(pools, dvalues, strict=True) if POOLINGS[p].uniform and d is not None
        ]
        dtype = torch.promote_types(grad.dtype, scale.dtype)
        nhwc = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        layout = torch.channels_last if nhwc else torch.contiguous_format  # space_rows: a view
        dx = torch.empty_like(x, dtype=dtype, memory_format=layout)
        mean_grad = sum(spread[1:], spread[0]) * (1.0 / positions) if spread else None
        if mean_grad is not None and over == CHANNELS:
            torch.addcmul(mean_grad, grad, scale, out=dx)
        else:  # addcmul with N x C x 1 x 1 operands is ~2x slower than a product and an add
            torch.mul(grad, scale, out=dx)
            if mean_grad is not None:
                dx += mean_grad
        for p, d, value, extra in zip(pools, dvalues, values, ctx.extras, strict=True):  # type: ignore[attr-defined]
            if d is not None and not POOLINGS[p].uniform:
                POOLINGS[p].backward(dx, x, value, extra, d.to(dtype), over)
        return (dx.to(x.dtype), dresidual, None, None, None, None, *param_grads)


def needs_grad(x: Tensor, residual: Tensor | None, params: Sequence[Tensor]) -> bool:
    """Whether autograd records this call (training): gradients on, and any input needs one."""
    return torch.is_grad_enabled() and (
        x.requires_grad
        or (residual is not None and residual.requires_grad)
        or any(p.requires_grad for p in params)
    )


def _native(pools: Sequence[str], x: Tensor, residual: Tensor | None) -> GateKernels | None:
    """The compiled passes (:mod:`classify.models.gate_native`) where they apply: mean and max
    poolings, float32 NCHW-contiguous CPU tensors, the kernels built; else None."""
    if not set(pools) <= NATIVE_POOLS or len(set(pools)) != len(pools):
        return None
    return gate_native.kernels_for(x, residual)


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
    if needs_grad(x, residual, params):
        native = _native(pools, x, residual)
        fused_from = FUSED_MIN_POSITIONS if native is None else NATIVE_MIN_POSITIONS
        if x.shape[2] * x.shape[3] >= fused_from:
            return _PooledGate.apply(x, residual, tuple(pools), over, gate, native, *params)
    scale = gate([pool(x, p, over) for p in pools])
    return x * scale if residual is None else torch.addcmul(residual, x, scale)
