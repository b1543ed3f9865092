"""Device selection, mixed precision and CPU threading in one place.

CUDA gets AMP (bf16 where supported, else fp16 with a gradient scaler) and channels_last; the CPU runs
fp32 (bf16 autocast is 10-56x slower on the CPUs we measured) with intra-op threads set to the cores.
Started by torchrun with several processes, each rank takes ``cuda:LOCAL_RANK`` for ``auto`` or
``cuda`` (:func:`rank_device`), and :func:`setup_device` joins the process group
(:func:`core.distributed.start`); with one process nothing of that happens.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from core.distributed import TIMEOUT_S, launched_world_size, local_rank, start
from core.errors import UserError
from core.names import DEVICES


def resolve_device(name: str = "auto") -> torch.device:
    """Map ``auto|cpu|cuda[:N]`` to a device, with a clear error when CUDA is asked for but absent."""
    if name == "auto":
        return rank_device(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA device is visible; use --device cpu or auto")
        return rank_device(torch.device(name))
    if name == "cpu":
        return torch.device("cpu")
    raise UserError(f"--device {name!r}: choose one of {', '.join(DEVICES)}")


def rank_device(device: torch.device) -> torch.device:
    """``device`` itself in one process; under torchrun with several processes each rank's own
    GPU, ``cuda:LOCAL_RANK`` (a fixed ``cuda:N`` would put every rank on one GPU: refused)."""
    if device.type != "cuda" or launched_world_size() <= 1:
        return device
    if device.index is not None:
        raise UserError(
            f"--device {device}: with several processes each rank uses cuda:LOCAL_RANK; pass "
            "--device cuda (or auto) and choose GPUs with CUDA_VISIBLE_DEVICES"
        )
    index = local_rank()
    if index >= torch.cuda.device_count():
        raise UserError(
            f"LOCAL_RANK {index}: only {torch.cuda.device_count()} GPU(s) visible; start at "
            "most that many processes per node (--nproc-per-node)"
        )
    return torch.device("cuda", index)


def configure_cpu_threads() -> int:
    """Use every core this process may run on (respecting an explicit OMP_NUM_THREADS)."""
    if "OMP_NUM_THREADS" in os.environ:
        return torch.get_num_threads()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    torch.set_num_threads(max(1, cores))
    return torch.get_num_threads()


def setup_device(
    name: str = "auto", *, cudnn_benchmark: bool = False, timeout: float = TIMEOUT_S
) -> torch.device:
    """Resolve ``name`` and prepare the device for a job: every core on the CPU (torchrun gives
    each of several ranks one thread, through OMP_NUM_THREADS); on CUDA, ``cudnn_benchmark`` lets
    cuDNN pick its fastest kernels (worth it for fixed input shapes). Under torchrun with several
    processes, also join the process group (collectives time out after ``timeout`` seconds)."""
    device = resolve_device(name)
    if device.type == "cpu":
        configure_cpu_threads()
    elif cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    start(device, timeout)
    return device


def join_group(name: str = "auto", timeout: float = TIMEOUT_S) -> None:
    """Under torchrun with several processes, join the process group now (on ``name``'s device, as
    :func:`setup_device` does), so that from here on rank 0 decides for every rank
    (:func:`core.distributed.on_main`): a command made of several steps joins before its first
    step. Nothing in one process."""
    if launched_world_size() > 1:
        setup_device(name, timeout=timeout)


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``device``: bf16/fp16 on CUDA, none on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@contextlib.contextmanager
def autocast(device: torch.device) -> Iterator[None]:
    dtype = amp_dtype(device)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def make_grad_scaler(device: torch.device) -> torch.amp.GradScaler:
    """A scaler that is active only for fp16 on CUDA (bf16 and fp32 need none)."""
    enabled = device.type == "cuda" and amp_dtype(device) == torch.float16
    return torch.amp.GradScaler(device.type, enabled=enabled)


def memory_format(device: torch.device) -> torch.memory_format:
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format
