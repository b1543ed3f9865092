"""CBAM's two gates as one autograd Function on the compiled passes (Woo et al. 2018, "CBAM:
Convolutional Block Attention Module", arXiv:1807.06521, eq. 1-3):
``out = (x * M_c) * M_s + residual`` with ``M_c = sigmoid(MLP(avg) + MLP(max))`` over H x W and
``M_s = sigmoid(BN(conv7x7([max_c, mean_c])))`` over the channels of ``y = x * M_c``.

Run one after the other (:func:`classify.models.gating.pooled_gate` per gate), the gates write the
channel gate's output ``y`` in the forward and its gradient ``dy`` in the backward, and read each
back. Here the kernels of :mod:`classify.models.gate_native` compute ``y`` where they need it from
``x`` and the channel scale: the forward reads ``x`` three times and writes the output once, the
backward reads the gradient three times and ``x`` twice and writes ``dx`` once; ``y`` is neither
written nor kept for the backward. The gate networks (the shared MLP; conv, BatchNorm) run on
detached descriptors under autograd, as in :class:`classify.models.gating._PooledGate`, so their
maths and parameter updates are PyTorch's own.

Used while training on float32 NCHW CPU tensors with the kernels built and channel poolings among
mean and max (the paper's and the default); everything else runs the gates in turn.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from classify.models import gate_native
from classify.models.gate_native import GateKernels
from classify.models.gating import NATIVE_MIN_POSITIONS, NATIVE_POOLS, needs_grad
from classify.models.pooling import SPACE


class _FusedCBAM(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: Tensor,
        residual: Tensor | None,
        kernels: GateKernels,
        channel: nn.Module,
        spatial: nn.Module,
        *params: Tensor,
    ) -> Tensor:
        pools: tuple[str, ...] = channel.pool_types  # type: ignore[assignment]
        mean, top, carg = kernels.pool(x, SPACE, "max" in pools)
        by_pool = {"avg": mean, "max": top}
        cleaves = [by_pool[p].requires_grad_() for p in pools]  # kernel outputs: fresh leaves
        with torch.enable_grad():
            cs_graph = channel.gate(cleaves)  # type: ignore[operator]
        cs = cs_graph.detach().contiguous()
        smean, smax, sarg = kernels.cbam_spatial_pool(x, cs)
        spooled = {"avg": smean, "max": smax}
        sleaves = [spooled[p].requires_grad_() for p in spatial.POOLS]  # type: ignore[union-attr]
        with torch.enable_grad():
            ss_graph = spatial.gate(sleaves)  # type: ignore[operator]
        ss = ss_graph.detach().contiguous()
        n_channel = len(tuple(channel.parameters()))
        ctx.graphs = (cs_graph, cleaves, ss_graph, sleaves)  # type: ignore[attr-defined]
        ctx.pools, ctx.spatial_pools = pools, spatial.POOLS  # type: ignore[attr-defined]
        ctx.params = (params[:n_channel], params[n_channel:])  # type: ignore[attr-defined]
        ctx.args = (kernels, carg, sarg)  # type: ignore[attr-defined]
        ctx.residual_dtype = None if residual is None else residual.dtype  # type: ignore[attr-defined]
        ctx.save_for_backward(x, cs, ss)
        return kernels.cbam_out(x, cs, ss, residual)

    @staticmethod
    @once_differentiable
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: Tensor
    ) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, cs, ss = ctx.saved_tensors  # type: ignore[attr-defined]
        cs_graph, cleaves, ss_graph, sleaves = ctx.graphs  # type: ignore[attr-defined]
        kernels, carg, sarg = ctx.args  # type: ignore[attr-defined]
        channel_params, spatial_params = ctx.params  # type: ignore[attr-defined]
        n, c, h, w = x.shape
        g = grad.to(torch.float32).contiguous()
        # The spatial gate: its descriptors' and parameters' gradients (its graph is retained for
        # a second backward through a retained outer graph, as gradcheck does).
        dss = kernels.cbam_spatial_dot(g, x, cs)
        sgrads = _grads(ss_graph, sleaves, spatial_params, dss)
        dspatial = dict(zip(ctx.spatial_pools, sgrads[: len(sleaves)], strict=True))  # type: ignore[attr-defined]
        spatial = (dspatial["avg"] * (1.0 / c), dspatial["max"], sarg)
        spatial = tuple(t.contiguous() for t in spatial)
        # The channel gate, from dy computed on the fly.
        dcs = kernels.cbam_channel_dot(g, x, ss, spatial)
        cgrads = _grads(cs_graph, cleaves, channel_params, dcs)
        dchannel = dict(zip(ctx.pools, cgrads[: len(cleaves)], strict=True))  # type: ignore[attr-defined]
        cmean = dchannel.get("avg")
        cmean = None if cmean is None else (cmean * (1.0 / (h * w))).contiguous()
        cmax = dchannel.get("max")
        channel = (cmean, None if cmax is None else cmax.contiguous(), carg)
        dx = kernels.cbam_dx(g, ss, spatial, cs, channel)
        dresidual = None if ctx.residual_dtype is None else grad.to(ctx.residual_dtype)  # type: ignore[attr-defined]
        params = cgrads[len(cleaves) :] + sgrads[len(sleaves) :]
        return (dx, dresidual, None, None, None, *params)


def _grads(
    output: Tensor, leaves: list[Tensor], params: tuple[Tensor, ...], grad: Tensor
) -> list[Tensor | None]:
    """Gradients of ``leaves`` (zeros where unused) and ``params`` (None where frozen or unused)."""
    wanted = [p for p in params if p.requires_grad]
    found = torch.autograd.grad(
        output, [*leaves, *wanted], grad, retain_graph=True, allow_unused=True
    )
    leaf_grads = [
        torch.zeros_like(v) if d is None else d for v, d in zip(leaves, found, strict=False)
    ]
    rest = iter(found[len(leaves) :])
    return [*leaf_grads, *(next(rest) if p.requires_grad else None for p in params)]


def fused_cbam(
    x: Tensor, residual: Tensor | None, channel: nn.Module, spatial: nn.Module
) -> Tensor | None:
    """``spatial(channel(x), residual)`` through :class:`_FusedCBAM` where it applies (training,
    float32 NCHW CPU tensors, mean/max channel poolings, the kernels built); else None."""
    params = (*channel.parameters(), *spatial.parameters())
    pools = set(channel.pool_types)  # type: ignore[arg-type]
    if not needs_grad(x, residual, params) or not pools <= NATIVE_POOLS:
        return None
    if x.shape[2] * x.shape[3] < NATIVE_MIN_POSITIONS:
        return None
    kernels = gate_native.kernels_for(x, residual)
    if kernels is None:
        return None
    return _FusedCBAM.apply(x, residual, kernels, channel, spatial, *params)
