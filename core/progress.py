"""Progress displays: the Rich consoles, a generic progress bar, and what a training run shows while
it runs (bars for decoding, the whole run and the current epoch with running loss, accuracy,
images/s, learning rate and ETA, and one summary line per epoch). The only library module that
uses Rich."""

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

console = Console()
err_console = Console(stderr=True)


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


class NullDisplay:
    """Shows nothing (``progress=False``)."""

    def __enter__(self) -> NullDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def decode_task(self, total: int) -> Callable[[int], None] | None:
        return None

    def start_run(self, name: str, epochs: int, steps_per_epoch: int, first_epoch: int) -> None:
        return None

    def start_epoch(self, epoch: int, epochs: int, n_batches: int, done: int) -> None:
        return None

    def batch(self, logs: dict[str, float]) -> None:
        return None

    def end_epoch(self, record: dict[str, Any]) -> None:
        return None

    def notice(self, message: str) -> None:
        return None


class TrainDisplay(NullDisplay):
    """A fresh Rich progress for each ``with`` block (decoding, then training)."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.run_task: TaskID | None = None
        self.epoch_task: TaskID | None = None

    def __enter__(self) -> TrainDisplay:
        self.progress = make_progress()
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
        self.progress = None
        self.run_task = self.epoch_task = None

    def decode_task(self, total: int) -> Callable[[int], None] | None:
        progress = self.progress
        if progress is None:
            return None
        task = progress.add_task("decode train", total=total, info="")
        return lambda n: progress.advance(task, n)

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

    def notice(self, message: str) -> None:
        console = self.progress.console if self.progress is not None else err_console
        console.print(f"[yellow]{message}[/yellow]", highlight=False)


def make_display(progress: bool) -> NullDisplay:
    return TrainDisplay() if progress else NullDisplay()
