"""How a job trains on several processes: :class:`DistConfig`, the fields of the commands'
``--nproc``, ``--sync-bn/--local-bn``, ``--dist-timeout`` and ``--device`` options, checked before
any work starts. The process group itself is :mod:`core.distributed`.

BatchNorm over the global batch is PyTorch's SyncBatchNorm, which runs on CUDA only (NCCL; its
statistics kernels have no CPU version). So it is the default on CUDA, local BatchNorm (each
process normalises by its own share of the batch) is the default on the CPU, and ``--sync-bn`` on
the CPU is refused with one line.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from core.errors import UserError

TIMEOUT_S = 600.0  # torch's own default for gloo and NCCL collectives is 10 minutes too
SYNC_BN_NEEDS_CUDA = (
    "--sync-bn: SyncBatchNorm needs CUDA (PyTorch has no CPU version); on the CPU use local "
    "BatchNorm, the default there (--local-bn)"
)


@dataclass(frozen=True)
class DistConfig:
    """How a multi-process run trains (ignored by a one-process run); the CLI's defaults.

    ``sync_bn``: BatchNorm statistics over the global batch (SyncBatchNorm) rather than each
    rank's share; None: on CUDA, not on the CPU. ``device``: the job's ``--device`` (the command's
    own option), which decides that. ``dist_timeout``: seconds a collective waits for another rank
    before raising. ``nproc``: processes ``--nproc`` starts on this machine through
    :mod:`torch.distributed.run`.
    """

    sync_bn: bool | None = None
    dist_timeout: float = TIMEOUT_S
    nproc: int = 1
    device: str = "auto"

    def validate(self) -> DistConfig:
        """Refuse impossible values (``--sync-bn`` on the CPU among them, in one process too);
        return the config with ``sync_bn`` decided (True or False)."""
        if self.dist_timeout <= 0:
            raise UserError(f"--dist-timeout {self.dist_timeout}: must be > 0 seconds")
        if self.nproc < 1:
            raise UserError(f"--nproc {self.nproc}: must be >= 1")
        cuda = trains_on_cuda(self.device)
        if self.sync_bn and not cuda:
            raise UserError(SYNC_BN_NEEDS_CUDA)
        return replace(self, sync_bn=cuda if self.sync_bn is None else self.sync_bn)


def trains_on_cuda(device: str) -> bool:
    """Whether ``--device`` ``device`` means CUDA: ``cuda``/``cuda:N``, or ``auto`` with a GPU
    visible (the choice :func:`core.device.resolve_device` makes)."""
    if device == "auto":
        import torch  # here: building ``cli --help`` imports no torch

        return torch.cuda.is_available()
    return device.startswith("cuda")
