"""What the ranks of a multi-process run (:mod:`core.distributed`) do together; in one process
every function here is the plain computation (a loop, the values themselves, the usual guard).

- :func:`main_only`: rank 0 does a whole step by itself, as one process would, while the others
  wait (a synthetic set, a report: the steps of ``cli pipeline`` that are not training);
- :func:`map_sharded`: items dealt round-robin to the ranks, each computed once, the results
  gathered back in the input order on every rank (evaluation batches, feature batches);
- :func:`batch_part`: this rank's contiguous slice of a global training batch;
- :func:`all_sum`, :func:`all_mean`: per-step statistics; :func:`gather_objects`, :func:`barrier`;
- :func:`finish`: every rank done, all leave the process group together;
- :func:`rank_generator`: a seeded random stream of this rank's own;
- :class:`AgreedStop`: Ctrl-C that stops every rank after the same step (:func:`make_guard`).
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, TypeVar

from core.distributed import (
    TIMEOUT_S,
    alone,
    collective_device,
    group,
    is_active,
    on_main,
    rank,
    stop,
    world_size,
)
from core.interrupts import InterruptGuard

A = TypeVar("A")
B = TypeVar("B")
T = TypeVar("T")

# How long the other ranks wait for a step rank 0 does alone (main_only): such a step may take far
# longer than a collective should; a rank 0 that dies closes its connections, which ends the wait.
MAIN_ONLY_TIMEOUT_S = 24 * 3600.0


def barrier() -> None:
    """Wait until every rank got here (nothing in one process)."""
    dist = group()
    if dist is not None and dist.get_world_size() > 1:
        dist.barrier()


def finish() -> None:
    """After a command succeeded on this rank: wait for every rank, then leave the process group
    (nothing in one process). Without the barrier a rank whose last collective was a send (rank
    0's broadcast) could close its connections while a peer still reads from them, and gloo
    aborts that peer. A rank that failed leaves at exit (:func:`core.distributed.stop`)."""
    with contextlib.suppress(Exception):  # a peer that died is reported by its own error
        barrier()
    stop()


def main_only(fn: Callable[[], T]) -> T:
    """``fn()`` on rank 0 alone, as a one-process run does it (:func:`core.distributed.alone`: it
    writes, prints and enters no collective), while the other ranks wait; then every rank gets its
    result, or its error (as :func:`~core.distributed.on_main` shares it), and a Ctrl-C there is a
    KeyboardInterrupt on every rank. The others wait up to :data:`MAIN_ONLY_TIMEOUT_S` (in a gloo
    group of their own), not the collective timeout: synthesizing a set or drawing a report may
    take longer. Nested calls, and one process: just ``fn()``."""
    if not is_active():
        return fn()

    def by_itself() -> T:
        with alone():
            return fn()

    return on_main(by_itself, over=_waiting_group(), interrupts=True)


_waiting: dict[int, Any] = {}  # id of the default group -> the group main_only waits in


def _waiting_group() -> Any:
    """The gloo group of every rank that :func:`main_only` waits in; made once, by every rank."""
    import torch.distributed as dist

    key = id(dist.group.WORLD)
    if key not in _waiting:
        seconds = max(MAIN_ONLY_TIMEOUT_S, TIMEOUT_S)
        _waiting.clear()
        _waiting[key] = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=seconds))
    return _waiting[key]


# --- sharding -------------------------------------------------------------------------------------


def map_sharded(items: Sequence[A], fn: Callable[[A], B]) -> list[B]:
    """``[fn(x) for x in items]``, with item i computed on rank ``i % world_size`` and the results
    (picklable, CPU) gathered back in the input order on every rank."""
    if not is_active():
        return [fn(item) for item in items]
    import torch.distributed as dist

    world, me = world_size(), rank()
    mine = [fn(items[i]) for i in range(me, len(items), world)]
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, mine)
    out: list[Any] = [None] * len(items)
    for r, results in enumerate(gathered):
        for j, result in enumerate(results):
            out[r + j * world] = result
    return out


def batch_part(n: int) -> slice:
    """This rank's contiguous part of a global batch of ``n`` (``torch.tensor_split``'s sizes:
    the first ``n % world_size`` ranks take one more); the parts of all ranks tile the batch."""
    world, me = world_size(), rank()
    base, extra = divmod(n, world)
    begin = me * base + min(me, extra)
    return slice(begin, begin + base + (1 if me < extra else 0))


def all_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sums over ranks (in float64); the values themselves in one process."""
    if not is_active():
        return [float(v) for v in values]
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64)
    tensor = tensor.to(collective_device())
    dist.all_reduce(tensor)
    return tensor.cpu().tolist()


def all_mean(values: Sequence[float]) -> list[float]:
    """Element-wise means over ranks; ``values`` unchanged in one process."""
    if not is_active():
        return list(values)
    return [v / world_size() for v in all_sum(values)]


def gather_objects(value: A) -> list[A]:
    """Every rank's ``value`` (picklable, CPU), in rank order; ``[value]`` in one process."""
    if not is_active():
        return [value]
    import torch.distributed as dist

    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, value)
    return out


def rank_generator(seed: int) -> Any:
    """A CPU ``torch.Generator`` for this rank: seeded with ``seed`` itself in one process (the
    stream a one-process run always drew), from (seed, rank) with several ranks, so every rank
    draws its own noise and augmentation (SeedSequence keeps neighbouring seeds apart)."""
    import numpy as np
    import torch

    if not is_active():
        return torch.Generator().manual_seed(seed)
    state = np.random.SeedSequence([seed, rank()]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


# --- stopping together -----------------------------------------------------------------------------


class AgreedStop(InterruptGuard):
    """Ctrl-C in a multi-process run: every rank must stop after the same step, or the others
    wait in a collective for it. torchrun's agent forwards the launcher's SIGINT to every rank,
    at slightly different moments; so the first SIGINT is only recorded, wherever it lands, each
    step's all-reduce carries the flag (:meth:`agree`), and once any rank has it all of them stop
    at that step's end, where rank 0 saves. A second SIGINT stops this rank at once, unsaved."""

    def __init__(self, on_deferred: Callable[[], None] | None = None) -> None:
        super().__init__(on_deferred)
        self.stop = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.pending:
            self.pending = True
            if self.on_deferred is not None:
                self.on_deferred()
            return
        self.dirty = True
        raise KeyboardInterrupt

    def critical(self) -> Any:
        return contextlib.nullcontext()  # everything is deferred; the stop is decided jointly

    def flag(self) -> float:
        """This rank's vote for the step's all-reduce."""
        return 1.0 if self.pending else 0.0

    def agree(self, votes: float) -> bool:
        """Record the all-reduced votes; True when every rank is to stop now."""
        self.stop = votes > 0
        return self.stop


def make_guard() -> InterruptGuard:
    """The Ctrl-C guard of this run: :class:`AgreedStop` with several ranks, else the usual one."""
    return AgreedStop() if is_active() else InterruptGuard()
