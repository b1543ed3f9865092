"""Several processes training one model: torch.distributed under ``torchrun``.

Data-parallel training as PyTorch's DistributedDataParallel does it (Li et al. 2020, "PyTorch
Distributed: Experiences on Accelerating Data Parallel Training", VLDB): every process (rank)
holds the whole model, trains on its own share of each global batch, and gradients are averaged
across ranks before every optimizer step, so all ranks keep identical weights. ``torchrun``
(:mod:`torch.distributed.run`) starts the ranks and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`start` joins the default process group through them
(``env://``): NCCL on CUDA, each rank on ``cuda:LOCAL_RANK``; gloo on the CPU. A collective that
waits longer than the group's timeout for another rank (one that died) raises instead of hanging.

With ``WORLD_SIZE`` unset or 1 no process group is ever started and every helper below is the
identity (``on_main(fn)`` is ``fn()``, ``map_sharded`` a plain loop): a one-process run takes
exactly the code path it always took. Nothing here imports torch before it is needed (``cli
--help`` imports none).

- :func:`rank`, :func:`world_size`, :func:`is_main`, :func:`launched_world_size`;
- :func:`on_main`: rank 0 alone runs a function (opening or writing a run folder) and every rank
  gets its result, or its one-line error (:class:`SharedError` on the other ranks);
- :func:`alone`: this process acts as a one-process run (:func:`core.ranks.main_only`);
- :func:`same_on_every_rank`, :func:`check_batch_split`: refusals that hold on every rank;
- :func:`peer_errors`: a collective broken by a dead rank becomes a one-line error;
- sharing work and numbers, stopping together: :mod:`core.ranks`.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from core.distconfig import TIMEOUT_S, DistConfig
from core.errors import UserError

if TYPE_CHECKING:
    import torch

T = TypeVar("T")

TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class SharedError(UserError):
    """Rank 0's one-line error, raised on the other ranks as well (only rank 0 prints it)."""


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise UserError(f"{name}={value!r}: not an integer (torchrun sets it)") from None


def launched_world_size() -> int:
    """``WORLD_SIZE`` as torchrun set it (1 when this process was not started by torchrun)."""
    return max(1, _env_int("WORLD_SIZE", 1))


_alone = False  # inside alone(): this process acts as a one-process run


def group() -> Any:
    """``torch.distributed`` when a process group is up, else None (without importing torch;
    None inside :func:`alone`)."""
    if _alone or "torch.distributed" not in sys.modules:
        return None
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def is_active() -> bool:
    """True inside a multi-process run (a process group of more than one rank is up)."""
    dist = group()
    return dist is not None and dist.get_world_size() > 1


def rank() -> int:
    """This process's global rank (0 in a one-process run; torchrun's ``RANK`` before start)."""
    dist = group()
    if dist is not None:
        return dist.get_rank()
    return _env_int("RANK", 0) if launched_world_size() > 1 else 0


def world_size() -> int:
    dist = group()
    return dist.get_world_size() if dist is not None else 1


def local_rank() -> int:
    return _env_int("LOCAL_RANK", 0) if launched_world_size() > 1 else 0


def is_main() -> bool:
    """Rank 0: the one process that writes files and shows progress."""
    return rank() == 0


def start(device: torch.device, timeout: float = TIMEOUT_S) -> bool:
    """Join the process group torchrun describes, once; True when this is a multi-process run.

    NCCL for a CUDA ``device`` (bound to it), gloo otherwise; ``timeout`` seconds for every
    collective. Idempotent; the group is left at exit. Without ``WORLD_SIZE`` > 1: nothing.
    """
    world = launched_world_size()
    if world <= 1:
        return False
    import torch.distributed as dist

    if not dist.is_available():
        raise UserError(f"WORLD_SIZE={world}, but this torch build has no torch.distributed")
    if dist.is_initialized():
        return dist.get_world_size() > 1
    missing = [name for name in TORCHRUN_VARS if not os.environ.get(name)]
    if missing:
        raise UserError(
            f"WORLD_SIZE={world} but {', '.join(missing)} unset: start the command with "
            "`torchrun --nproc-per-node N cli.py ...` (or pass --nproc N)"
        )
    backend = "nccl" if device.type == "cuda" else "gloo"
    options: dict[str, Any] = {}
    if device.type == "cuda":
        import torch

        torch.cuda.set_device(device)  # NCCL's object collectives use the current device
        options["device_id"] = device
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout), **options)
    atexit.register(stop)
    return True


def stop() -> None:
    """Leave the process group (at exit; harmless when none is up)."""
    dist = group()
    if dist is not None:
        with contextlib.suppress(Exception):  # peers may be gone already
            dist.destroy_process_group()


def collective_device() -> torch.device:
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# --- rank 0 decides, every rank learns ------------------------------------------------------------


def on_main(fn: Callable[[], T], *, over: Any = None, interrupts: bool = False) -> T:
    """``fn()`` on rank 0, its result (picklable) broadcast to every rank; a UserError there is
    raised on every rank (:class:`SharedError` on the others), any other failure too. One
    process: just ``fn()``. ``over``: the group to broadcast in (default: the default group);
    ``interrupts``: a Ctrl-C on rank 0 is a KeyboardInterrupt on every rank (else an error)."""
    if not is_active():
        return fn()
    import torch.distributed as dist

    box: list[Any] = [None]
    failure: BaseException | None = None
    if rank() == 0:
        try:
            box[0] = ("ok", fn())
        except UserError as exc:
            box[0], failure = ("error", str(exc)), exc
        except BaseException as exc:  # a crash or Ctrl-C: the others must not wait for ever
            kind = "interrupt" if interrupts and isinstance(exc, KeyboardInterrupt) else "crash"
            box[0], failure = (kind, f"{type(exc).__name__}: {exc}"), exc
    dist.broadcast_object_list(box, src=0, group=over)
    kind, value = box[0]
    if failure is not None:
        raise failure
    if kind == "error":
        raise SharedError(value)
    if kind == "interrupt":
        raise KeyboardInterrupt
    if kind == "crash":
        raise RuntimeError(f"rank 0 failed: {value}")
    return value


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """Inside, this process acts as a one-process run: no group (every helper here and in
    :mod:`core.ranks` is the identity), rank 0 writes and prints (:func:`core.ranks.main_only`)."""
    global _alone
    before, _alone = _alone, True
    try:
        yield
    finally:
        _alone = before


def same_on_every_rank(value: Any, what: str) -> None:
    """Refuse (on every rank) a ``value`` that differs between ranks, e.g. decoded images."""
    if not is_active():
        return
    import torch.distributed as dist

    values: list[Any] = [None] * world_size()
    dist.all_gather_object(values, value)
    differ = [r for r, v in enumerate(values) if v != values[0]]
    if differ:
        error = SharedError if rank() != 0 else UserError
        raise error(
            f"{what} differ between rank 0 and rank(s) {', '.join(map(str, differ))}: every "
            "node needs the same dataset at the same path"
        )


def refuse(message: str) -> NoReturn:
    """Raise a refusal every rank reaches alike: printed once, by rank 0."""
    raise (UserError if is_main() else SharedError)(message)


def check_batch_split(batch_size: int, *, sync_bn: bool, smallest: int | None = None) -> None:
    """``--batch-size`` is the global batch: refuse one that the ranks cannot split evenly, and
    (given the ``smallest`` batch of an epoch) shares too small for BatchNorm (one image with
    SyncBatchNorm, two with local statistics). Nothing to check in one process."""
    world = world_size()
    if world <= 1:
        return
    if batch_size % world:
        lower, upper = batch_size - batch_size % world, batch_size - batch_size % world + world
        refuse(
            f"--batch-size {batch_size}: the global batch is split across {world} processes and "
            f"must divide by {world}; use {lower or upper} or {upper}"
        )
    need = world if sync_bn else 2 * world
    if smallest is not None and smallest < need:
        refuse(
            f"--batch-size {batch_size}: the smallest batch of an epoch has {smallest} images, "
            f"too few for {world} processes ({need} needed"
            + ("" if sync_bn else " with --local-bn")
            + "); use fewer processes or more images"
        )


def distributed_summary(batch_size: int, config: DistConfig) -> dict[str, Any]:
    """config.json's ``distributed`` entry of a multi-process run (nothing in one process)."""
    dist = group()
    if dist is None or dist.get_world_size() <= 1:
        return {}
    world = dist.get_world_size()
    return {
        "distributed": {
            "world_size": world,
            "backend": dist.get_backend(),
            "sync_bn": config.sync_bn,
            "global_batch": batch_size,
            "batch_per_rank": batch_size / world,
        }
    }


_COMM_WORDS = (
    "gloo",
    "nccl",
    "connection",
    "timed out",
    "timeout",
    "peer",
    "socket",
    "broken pipe",
)


@contextlib.contextmanager
def peer_errors(hint: str) -> Iterator[None]:
    """Turn a collective that failed because another rank died (or timed out) into a one-line
    UserError naming this rank and ``hint`` (how to continue); other errors pass unchanged."""
    try:
        yield
    except RuntimeError as exc:
        import torch.distributed as dist

        text = re.sub(r"\[[^\]]*\.(?:cc|cpp|h|hpp):\d+\]\s*", "", str(exc)).strip()  # C++ file:line
        first = text.splitlines()[0][:200] if text else type(exc).__name__
        lost = isinstance(exc, dist.DistError) or any(w in text.lower() for w in _COMM_WORDS)
        if not (is_active() and lost):
            raise
        raise UserError(
            f"rank {rank()}: lost contact with another process ({first}); {hint}"
        ) from None
