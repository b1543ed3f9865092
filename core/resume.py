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
