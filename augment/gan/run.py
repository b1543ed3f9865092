"""The GAN run folder: ``config.json``, checkpoint layout, resume rules, the progress display.

``runs/NAME/`` holds ``config.json`` (GanConfig + class names + dataset summary + versions),
``history.jsonl`` (``kind: "train"`` lines every ``log_every`` iterations with mean losses and D's
accuracies; ``kind: "eval"`` lines with the sample grid and per-class FID/KID), ``samples/``
(``iter_XXXXXX.png`` grids) and ``last.pt`` /
``best.pt`` (best mean per-class FID; the last evaluation when FID is off), written atomically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch
from rich.progress import Progress, TaskID
from torch import nn

from augment.gan.config import RESUMABLE_FIELDS, GanConfig
from augment.sampling import CHECKPOINT_FORMAT
from classify.training.run import now, versions
from core.data import ImageTensors
from core.errors import UserError
from core.progress import make_progress


def run_dir_of(cfg: GanConfig) -> Path:
    return Path(cfg.runs_dir) / cfg.name


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def run_config_json(cfg: GanConfig, data: ImageTensors, data_sha256: str) -> dict[str, Any]:
    return {
        "gan": cfg.to_dict(),
        "class_names": list(data.class_names),
        "dataset": {
            "root": str(Path(cfg.data)),
            "split": "train",
            "n_train": len(data),
            "train_class_counts": dict(zip(data.class_names, data.class_counts(), strict=True)),
            "skipped": [list(s) for s in data.skipped],
            "images_sha256": data_sha256,
        },
        "versions": versions(),
        "created": now(),
    }


def check_gan_checkpoint(state: dict[str, Any], path: Path) -> None:
    if state.get("format") != CHECKPOINT_FORMAT:
        raise UserError(
            f"{path}: not a GAN checkpoint (format {state.get('format')!r}, "
            f"expected {CHECKPOINT_FORMAT!r}); pick the run of a `cli gan-train`"
        )


def resume_gan_config(saved: GanConfig, requested: GanConfig, run_dir: Path) -> GanConfig:
    """The saved configuration with the runtime fields of ``requested`` (refusing other changes)."""
    allowed = RESUMABLE_FIELDS | {"data", "name", "runs_dir"}
    differ = [
        f.name
        for f in fields(GanConfig)
        if f.name not in allowed and getattr(saved, f.name) != getattr(requested, f.name)
    ]
    if differ:
        listing = ", ".join(
            f"{n} (saved {getattr(saved, n)!r}, given {getattr(requested, n)!r})" for n in differ
        )
        raise UserError(
            f"{run_dir}: --resume continues with the run's saved settings, but these differ: "
            f"{listing}; drop those options or start a new --name"
        )
    return replace(saved, **{name: getattr(requested, name) for name in allowed})


def train_record(iteration: int, means: dict[str, float], seconds: float, ips: float) -> dict:
    return {"kind": "train", "iteration": iteration, **means, "images_per_second": ips,
            "seconds": seconds}  # fmt: skip


class Meter:
    """Running sums of the per-iteration statistics over one logging interval."""

    KEYS = ("d_loss", "g_loss", "d_real_acc", "d_fake_acc")

    def __init__(self) -> None:
        self.sums = dict.fromkeys(self.KEYS, 0.0)
        self.count = 0
        self.seconds = 0.0
        self.images = 0

    def add(self, stats: dict[str, float], seconds: float, images: int) -> None:
        for key in self.KEYS:
            self.sums[key] += stats[key]
        self.count += 1
        self.seconds += seconds
        self.images += images

    def means(self) -> dict[str, float]:
        return {k: v / max(1, self.count) for k, v in self.sums.items()}

    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "count": self.count, "seconds": self.seconds,
                "images": self.images}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums = dict(state["sums"])
        self.count, self.seconds, self.images = state["count"], state["seconds"], state["images"]


class GanDisplay:
    """A Rich bar over the run's iterations with losses, D accuracies and img/s; ``None``-safe."""

    def __init__(self, enabled: bool) -> None:
        self.progress: Progress | None = make_progress() if enabled else None
        self.main_task: TaskID | None = None

    def __enter__(self) -> GanDisplay:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def task(self, description: str, total: int) -> Callable[[int], None] | None:
        """A secondary bar; returns its ``advance(n)`` (``None`` without a display)."""
        progress = self.progress
        if progress is None:
            return None
        task = progress.add_task(description, total=total, info="")
        return lambda n: progress.advance(task, n)

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

    def notice(self, message: str) -> None:
        if self.progress is not None:
            self.progress.console.print(message, highlight=False, soft_wrap=True)
