"""What a GAN run stores: ``config.json``, the checkpoint check, resume rules, history lines (the
folder's lifecycle itself is :mod:`core.rundir`, shared with the classifier).

``runs/NAME/`` holds ``config.json`` (GanConfig + class names + dataset summary + versions),
``history.jsonl`` (``kind: "train"`` lines every ``log_every`` iterations with mean losses and D's
accuracies, plus, where enabled, ``lecam_loss``, ``r1_loss``, ADA's augmentation probability
``augment_p`` and the mean sign of D on reals ``d_real_sign``; ``kind: "eval"`` lines with the
sample grid and per-class FID/KID), ``samples/`` (``iter_XXXXXX.png`` grids) and ``last.pt`` /
``best.pt`` (best mean per-class FID; the last evaluation when FID is off), written atomically.
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from augment.gan.config import RESUMABLE_FIELDS, GanConfig
from augment.sampling import CHECKPOINT_FORMAT
from core.data import ImageTensors
from core.errors import UserError
from core.resume import refuse_changed


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def run_config_json(cfg: GanConfig, data: ImageTensors, data_sha256: str) -> dict[str, Any]:
    """The content of ``config.json`` (:meth:`core.rundir.RunDir.write_config` stamps it)."""
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
    }


def check_gan_checkpoint(state: dict[str, Any], path: Path) -> None:
    if state.get("format") != CHECKPOINT_FORMAT:
        raise UserError(
            f"{path}: not a GAN checkpoint (format {state.get('format')!r}, "
            f"expected {CHECKPOINT_FORMAT!r}); pick the run of a `cli gan-train`"
        )


def resume_gan_config(
    saved: GanConfig, requested: GanConfig, run_dir: Path, reached: int
) -> GanConfig:
    """The saved configuration with the runtime fields of ``requested`` (refusing other changes,
    and fewer ``iterations`` than the ``reached`` ones)."""
    allowed = RESUMABLE_FIELDS | {"data", "name", "runs_dir"}
    names = [f.name for f in fields(GanConfig) if f.name not in allowed]
    refuse_changed(saved, requested, names, run_dir)
    cfg = replace(saved, **{name: getattr(requested, name) for name in allowed}).validate()
    if cfg.iterations < reached:
        raise UserError(
            f"--iterations {cfg.iterations}: {run_dir} is already at iteration "
            f"{reached}; a resumed run may only be extended"
        )
    return cfg


def train_record(iteration: int, means: dict[str, float], seconds: float, ips: float) -> dict:
    return {"kind": "train", "iteration": iteration, **means, "images_per_second": ips,
            "seconds": seconds}  # fmt: skip


class Meter:
    """Running sums of the per-iteration statistics over one logging interval."""

    KEYS = ("d_loss", "g_loss", "d_real_acc", "d_fake_acc")

    def __init__(self, keys: tuple[str, ...] = KEYS) -> None:
        self.keys = keys
        self.sums = dict.fromkeys(keys, 0.0)
        self.count = 0
        self.seconds = 0.0
        self.images = 0

    def add(self, stats: dict[str, float], seconds: float, images: int) -> None:
        for key in self.keys:
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
