"""Progress displays: the Rich consoles, a generic progress bar, and what a training run shows while
it runs: :class:`TrainDisplay` for a classifier (the whole run, the current epoch, one line per
epoch), :class:`GanDisplay` for a GAN (its iterations), both built on :class:`BarDisplay`. The
only library module that uses Rich. In a multi-process run only rank 0 shows anything
(:func:`core.distributed.is_main`); the other ranks' displays are off."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from core.distributed import is_main

console = Console(quiet=not is_main())  # under torchrun the other ranks print no results
err_console = Console(stderr=True)  # errors from every rank


def make_progress(*extra_columns: Any, transient: bool = False) -> Progress:
    """A Rich progress bar with count, elapsed time and ETA; callers add a text column for metrics."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        *extra_columns,
        TextColumn("{task.fields[info]}"),
        console=err_console,
        transient=transient,
    )


class BarDisplay:
    """What the training displays share: a fresh Rich progress inside each ``with`` block (decoding,
    then training), secondary bars, notices; shows nothing when not ``enabled``."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and is_main()  # rank 0 alone shows progress
        self.progress: Progress | None = None

    def __enter__(self) -> BarDisplay:
        if self.enabled:
            self.progress = make_progress()
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
        self.progress = None
        self.forget_tasks()

    def forget_tasks(self) -> None:
        """Drop the task ids of the progress that just closed (subclasses hold some)."""

    def task(self, description: str, total: int) -> Callable[[int], None] | None:
        """A secondary bar; returns its ``advance(n)`` (``None`` without a display)."""
        progress = self.progress
        if progress is None:
            return None
        task = progress.add_task(description, total=total, info="")
        return lambda n: progress.advance(task, n)

    def notice(self, message: str, style: str | None = "yellow") -> None:
        """One line above the bars (a warning in yellow unless ``style`` says otherwise)."""
        if not self.enabled:
            return
        console = self.progress.console if self.progress is not None else err_console
        console.print(f"[{style}]{message}[/{style}]" if style else message, highlight=False,
                      soft_wrap=True)  # fmt: skip


class TrainDisplay(BarDisplay):
    """A classifier run: bars for the whole run and the current epoch with running loss,
    accuracy, images/s and learning rate, and one summary line per epoch."""

    def __init__(self, enabled: bool = True) -> None:
        super().__init__(enabled)
        self.run_task: TaskID | None = None
        self.epoch_task: TaskID | None = None

    def forget_tasks(self) -> None:
        self.run_task = self.epoch_task = None

    def start_run(self, name: str, epochs: int, steps_per_epoch: int, first_epoch: int) -> None:
        if self.progress is None:
            return
        self.run_task = self.progress.add_task(
            f"train {name}",
            total=epochs * steps_per_epoch,
            completed=(first_epoch - 1) * steps_per_epoch,
            info="",
        )

    def start_epoch(self, epoch: int, epochs: int, n_batches: int, done: int) -> None:
        if self.progress is None:
            return
        if self.epoch_task is not None:
            self.progress.remove_task(self.epoch_task)
        self.epoch_task = self.progress.add_task(
            f"epoch {epoch}/{epochs}", total=n_batches, completed=done, info=""
        )
        if self.run_task is not None and done:
            self.progress.advance(self.run_task, done)

    def batch(self, logs: dict[str, float]) -> None:
        if self.progress is None or self.epoch_task is None:
            return
        info = (
            f"loss {logs['loss']:.4f}  acc {logs['acc']:.1%}  "
            f"{logs['images_per_second']:.0f} img/s  lr {logs['lr']:.2e}"
        )
        self.progress.update(self.epoch_task, advance=1, info=info)
        if self.run_task is not None:
            self.progress.advance(self.run_task, 1)

    def end_epoch(self, record: dict[str, Any]) -> None:
        if self.progress is None:
            return
        val = (
            f"val loss {record['val_loss']:.4f} acc {record['val_acc']:.1%}"
            if record["val_acc"] is not None
            else "no validation split"
        )
        self.progress.console.print(
            f"epoch {record['epoch']}: train loss {record['train_loss']:.4f} "
            f"acc {record['train_acc']:.1%} | {val} | {record['seconds']:.1f} s, "
            f"{record['images_per_second']:.0f} img/s",
            highlight=False,
        )


class GanDisplay(BarDisplay):
    """A GAN run: one bar over its iterations with losses, D's accuracies and images/s."""

    def __init__(self, enabled: bool = True) -> None:
        super().__init__(enabled)
        self.main_task: TaskID | None = None

    def forget_tasks(self) -> None:
        self.main_task = None

    def start(self, name: str, total: int, done: int) -> None:
        if self.progress is not None:
            self.main_task = self.progress.add_task(
                f"gan {name}", total=total, completed=done, info=""
            )

    def update(self, iteration: int, stats: dict[str, float], ips: float) -> None:
        if self.progress is None or self.main_task is None:
            return
        info = (
            f"D {stats['d_loss']:.3f} G {stats['g_loss']:.3f} "
            f"acc real {stats['d_real_acc']:.2f} fake {stats['d_fake_acc']:.2f} {ips:.0f} img/s"
        )
        self.progress.update(self.main_task, completed=iteration, info=info)
