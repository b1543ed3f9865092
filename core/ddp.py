"""A model prepared for multi-process training: DistributedDataParallel and SyncBatchNorm.

:func:`data_parallel` wraps a model in :class:`torch.nn.parallel.DistributedDataParallel` (Li et
al. 2020): parameters are broadcast from rank 0 when it is built, and gradients are averaged over
the ranks in buckets overlapping the backward pass. With ``sync_bn`` its BatchNorm layers become
:class:`torch.nn.SyncBatchNorm` first, so the batch statistics are those of the global batch (as
one process would compute them) rather than of each rank's share (Ioffe & Szegedy 2015; the
synchronised form of Peng et al. 2018, "MegDet", and Goyal et al. 2017's large-batch recipe
discusses the per-worker form). The layers keep their parameter and buffer names, so checkpoints
written from :func:`unwrap` are those of a one-process run.

PyTorch's SyncBatchNorm runs on CUDA only (NCCL; its statistics kernels have no CPU version), so
on the CPU BatchNorm stays local to each rank: :class:`core.distconfig.DistConfig` refuses
``--sync-bn`` there before any work starts, and :func:`data_parallel` once more. In one process
nothing is wrapped or converted.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from core.distconfig import SYNC_BN_NEEDS_CUDA
from core.distributed import is_active
from core.errors import UserError


def data_parallel(model: nn.Module, device: torch.device, *, sync_bn: bool) -> nn.Module:
    """``model`` for training on this rank: DDP-wrapped (BatchNorm synchronised with ``sync_bn``,
    on CUDA only) in a multi-process run, ``model`` itself otherwise. The BatchNorm layers are
    swapped inside ``model`` and keep their parameters, so the caller's reference (and its
    optimizer) stay valid; save and evaluate :func:`unwrap` of it."""
    if not is_active():
        return model
    if sync_bn:
        if device.type != "cuda":
            raise UserError(SYNC_BN_NEEDS_CUDA)
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
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
