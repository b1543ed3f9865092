"""A model prepared for multi-process training: DistributedDataParallel and SyncBatchNorm.

:func:`data_parallel` wraps a model in :class:`torch.nn.parallel.DistributedDataParallel` (Li et
al. 2020): parameters are broadcast from rank 0 when it is built, and gradients are averaged over
the ranks in buckets overlapping the backward pass. With ``sync_bn`` its BatchNorm layers become
:class:`torch.nn.SyncBatchNorm` first, so the batch statistics are those of the global batch (as
one process would compute them) rather than of each rank's share (Ioffe & Szegedy 2015; the
synchronised form of Peng et al. 2018, "MegDet", and Goyal et al. 2017's large-batch recipe
discusses the per-worker form). The layers keep their parameter and buffer names, so checkpoints
written from :func:`unwrap` are those of a one-process run.

PyTorch's SyncBatchNorm runs on GPUs only (its statistics kernels have no CPU implementation), so
on the CPU :class:`CpuSyncBatchNorm` (DDP also refuses SyncBatchNorm layers in a CPU module) does
the same arithmetic in plain tensor operations, with
torch.distributed's ``all_gather``/``all_reduce`` for the communication: the forward pass combines
each rank's (count, mean, biased variance) into the global ones (the parallel variance of Chan et
al. 1979), the backward pass all-reduces the two per-channel sums the input gradient needs, and
the running statistics take the unbiased global variance, as ``F.batch_norm`` does. Weight and
bias gradients stay local sums (DDP averages them), as in PyTorch's own SyncBatchNorm. In one
process nothing is wrapped or converted.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from core.distributed import is_active, world_size


def data_parallel(model: nn.Module, device: torch.device, *, sync_bn: bool) -> nn.Module:
    """``model`` for training on this rank: DDP-wrapped (BatchNorm synchronised with ``sync_bn``)
    in a multi-process run, ``model`` itself otherwise. The module is converted in place, so the
    caller's reference (and its optimizer) stay valid; save and evaluate :func:`unwrap` of it."""
    if not is_active():
        return model
    if sync_bn:
        model = convert_sync_batchnorm(model, device)
    device_ids = [device.index] if device.type == "cuda" else None
    # Buffers: with SyncBatchNorm the running statistics agree on every rank already; with local
    # BatchNorm rank 0's are broadcast at every forward (DDP's default), so evaluation agrees.
    sync_buffers = not sync_bn
    if "forward_sync_buffers" in inspect.signature(nn.parallel.DistributedDataParallel).parameters:
        options = {"forward_sync_buffers": sync_buffers}  # torch >= 2.14's name
    else:
        options = {"broadcast_buffers": sync_buffers}
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, **options)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (the module itself when not wrapped)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm of ``model`` made synchronised: :class:`torch.nn.SyncBatchNorm` on a GPU,
    :class:`CpuSyncBatchNorm` on the CPU (DDP refuses SyncBatchNorm layers in a CPU module)."""
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for module in model.modules():
        if isinstance(module, _BatchNorm) and not isinstance(module, nn.SyncBatchNorm):
            module.__class__ = CpuSyncBatchNorm  # same parameters and buffers; forward differs
    return model


class CpuSyncBatchNorm(_BatchNorm):
    """BatchNorm over the global batch for CPU tensors (see the module docstring); in evaluation
    and in one process it is plain BatchNorm."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: Tensor) -> Tensor:
        if not self.training or not is_active():
            return super().forward(input)
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        running_mean, running_var = self.running_mean, self.running_var
        if self.track_running_stats:
            assert self.num_batches_tracked is not None
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.item())
        else:
            running_mean = running_var = None
        return _SyncBatchNormCpu.apply(
            input, self.weight, self.bias, running_mean, running_var, self.eps, factor
        )


def _channel_view(t: Tensor, dims: int) -> Tensor:
    return t.view(1, -1, *([1] * (dims - 2)))


class _SyncBatchNormCpu(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        weight: Tensor | None,
        bias: Tensor | None,
        running_mean: Tensor | None,
        running_var: Tensor | None,
        eps: float,
        momentum: float,
    ) -> Tensor:
        channels, reduce = x.shape[1], [0, *range(2, x.dim())]
        var, mean = torch.var_mean(x, dim=reduce, correction=0)
        count = x.new_full((1,), x.numel() // channels if x.numel() else 0)
        local = torch.cat([mean, var, count]).double()
        if not x.numel():
            local.zero_()  # an empty share counts for nothing but still joins the collective
        parts = [torch.empty_like(local) for _ in range(world_size())]
        dist.all_gather(parts, local)
        stats = torch.stack(parts)
        counts = stats[:, -1:]
        total = counts.sum()
        if total < 2:
            raise ValueError("Expected more than 1 value per channel when training")
        means, variances = stats[:, :channels], stats[:, channels : 2 * channels]
        global_mean = (counts * means).sum(0) / total
        global_var = (counts * (variances + (means - global_mean).square())).sum(0) / total
        mean_x, invstd = global_mean.to(x.dtype), torch.rsqrt(global_var + eps).to(x.dtype)
        if running_mean is not None and running_var is not None:
            unbiased = (global_var * total / (total - 1)).to(x.dtype)
            running_mean.mul_(1 - momentum).add_(mean_x, alpha=momentum)
            running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)
        xhat = (x - _channel_view(mean_x, x.dim())) * _channel_view(invstd, x.dim())
        ctx.save_for_backward(xhat, weight, invstd)
        ctx.total = float(total)
        ctx.has_bias = bias is not None
        if weight is None:
            return xhat.clone()  # the caller may modify its output in place; xhat is saved
        out = xhat * _channel_view(weight, x.dim())
        return out + _channel_view(bias, x.dim()) if bias is not None else out

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        xhat, weight, invstd = ctx.saved_tensors
        dims, reduce = grad_out.dim(), [0, *range(2, grad_out.dim())]
        grad_out = grad_out.contiguous()
        sum_dy = grad_out.sum(reduce)
        sum_dy_xhat = (grad_out * xhat).sum(reduce)
        sums = torch.cat([sum_dy, sum_dy_xhat]).double()
        dist.all_reduce(sums)
        channels = sum_dy.numel()
        mean_dy = (sums[:channels] / ctx.total).to(grad_out.dtype)
        mean_dy_xhat = (sums[channels:] / ctx.total).to(grad_out.dtype)
        scale = invstd if weight is None else invstd * weight
        grad_x = (
            grad_out - _channel_view(mean_dy, dims) - xhat * _channel_view(mean_dy_xhat, dims)
        ) * _channel_view(scale, dims)
        grad_w = sum_dy_xhat if weight is not None and ctx.needs_input_grad[1] else None
        grad_b = sum_dy if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None, None, None, None
