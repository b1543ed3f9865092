"""What ``--resume`` continues with: the configuration saved in a run's ``last.pt``, and the one
rule for which requested settings may differ from it (both trainers use it)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from core.errors import UserError
from core.io import load_checkpoint
from core.rundir import RunDir, checkpoint_config

C = TypeVar("C")
T = TypeVar("T")


def saved_config(run_dir: str | Path) -> dict[str, Any]:
    """The training configuration stored in ``run_dir/last.pt`` (old layouts included)."""
    last = RunDir.at(run_dir).last
    return checkpoint_config(load_checkpoint(last), last)


def refuse_changed(
    saved: Any,
    requested: Any,
    names: Iterable[str],
    run_dir: Path,
    value: Callable[[Any, str], Any] = getattr,
) -> None:
    """Raise a one-line error naming every setting in ``names`` that ``requested`` changes."""
    differ = [n for n in names if value(saved, n) != value(requested, n)]
    if differ:
        listing = ", ".join(
            f"{n} (saved {getattr(saved, n)!r}, given {getattr(requested, n)!r})" for n in differ
        )
        raise UserError(
            f"{run_dir}: --resume continues with the run's saved settings, but these differ: "
            f"{listing}; drop those options or start a new --name"
        )


def open_run(
    cfg: C,
    *,
    resume: bool,
    overwrite: bool,
    check: Callable[[dict[str, Any], Path], None],
    reconcile: Callable[[C, C, Path, dict[str, Any]], C],
) -> tuple[RunDir, dict[str, Any] | None, C]:
    """Open ``cfg``'s run folder before any data is read. With ``resume``, ``check`` the saved
    ``last.pt`` and ``reconcile(saved, requested, run_dir, state)`` the configuration to continue
    with. Returns the run folder, the checkpoint (``None`` for a fresh run) and that configuration."""
    cfg.validate()  # type: ignore[attr-defined]
    run = RunDir.of(cfg.runs_dir, cfg.name)  # type: ignore[attr-defined]
    state = run.open(resume=resume, overwrite=overwrite, dataset=cfg.data)  # type: ignore[attr-defined]
    if state is not None:
        check(state, run.last)
        saved = type(cfg).from_dict(checkpoint_config(state, run.last))  # type: ignore[attr-defined]
        cfg = reconcile(saved, cfg, run.path, state)
    return run, state, cfg


def join_and_open(device: str, dist: Any, opener: Callable[[], T]) -> tuple[Any, T]:
    """Open a run the way both trainers do under torchrun: join the process group first (so rank 0
    can share what it opens), then ``opener()`` on rank 0 only, its result shared with every rank;
    a rank 0 that dies while opening ends the others with a one-line error. Returns the device
    set up while joining (``None`` in one process, where nothing is joined) and the result."""
    from core.device import setup_device
    from core.distributed import launched_world_size, on_main, peer_errors

    joined = None
    if launched_world_size() > 1:
        joined = setup_device(device, cudnn_benchmark=True, timeout=dist.dist_timeout)
    with peer_errors("start the command again"):
        return joined, on_main(opener)
