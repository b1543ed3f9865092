"""Loading a trained classifier back from its run folder.

A checkpoint carries its own model arguments, training config and class names (format
``shoegan-classifier/1``), so the model is rebuilt from the file alone, nanoGPT-style. Run folders
are found and their checkpoint files named by :mod:`core.rundir`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from classify.image_files import load_image_files
from classify.models import ModelConfig, build_model
from classify.training.config import TrainConfig
from core.data import to_model_input
from core.device import autocast, memory_format, resolve_device
from core.errors import UserError
from core.io import load_checkpoint
from core.rundir import (
    CONFIG_KEY,
    LEGACY_CONFIG_KEYS,
    checkpoint_config,
    checkpoint_path,
    resolve_run_dir,
)

CHECKPOINT_FORMAT = "shoegan-classifier/1"
DEFAULT_BATCH_SIZE = 256


@dataclass
class LoadedClassifier:
    """A trained classifier ready for inference (eval mode, on ``device``)."""

    model: nn.Module
    model_config: ModelConfig
    train_config: TrainConfig
    class_names: list[str]
    run_dir: Path | None  # None: weights without a run (classify.pretrained_model)
    checkpoint_path: Path
    device: torch.device
    which: str = "best"
    epoch: int = 0  # completed training epochs stored in the checkpoint
    best_epoch: int | None = None
    val_acc: float | None = None

    @property
    def name(self) -> str:
        return self.run_dir.name if self.run_dir is not None else self.model_config.name

    @property
    def source(self) -> str:
        """Which weights these are, for figure titles: ``best.pt, epoch 12``."""
        return f"{self.which}.pt, epoch {self.epoch}"

    @property
    def image_size(self) -> int:
        return self.model_config.image_size

    def preprocess(self, paths: Sequence[str | Path]) -> torch.Tensor:
        """Image files as uint8 N x 3 x S x S, decoded as the run's images were (image size,
        resize mode); a one-line UserError for a missing or unreadable file."""
        return load_image_files(paths, self.image_size, self.train_config.resize_mode)

    def model_input(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 N x 3 x S x S (any device) -> float [-1, 1] on the model's device and layout."""
        if images_uint8.dtype != torch.uint8 or images_uint8.ndim != 4:
            raise ValueError(
                f"expected uint8 N x 3 x H x W, got {images_uint8.dtype} "
                f"{tuple(images_uint8.shape)}"
            )
        x = to_model_input(images_uint8.to(self.device, non_blocking=True))
        return x.contiguous(memory_format=memory_format(self.device))

    def predict_logits(
        self, images_uint8: torch.Tensor, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> torch.Tensor:
        """Logits (float32, CPU) for uint8 images, in batches, without autograd."""
        outputs = []
        with torch.inference_mode():
            for start in range(0, images_uint8.shape[0], batch_size):
                x = self.model_input(images_uint8[start : start + batch_size])
                with autocast(self.device):
                    logits = self.model(x)
                outputs.append(logits.float().cpu())
        if not outputs:
            return torch.empty(0, len(self.class_names))
        return torch.cat(outputs)

    def predict_proba(
        self, images_uint8: torch.Tensor, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> torch.Tensor:
        """Class probabilities (float32, CPU, rows sum to 1) for uint8 N x 3 x S x S images."""
        return torch.softmax(self.predict_logits(images_uint8, batch_size), dim=1)


def target_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a torch.device (None or "auto": CUDA when there is one)."""
    if device is None:
        return resolve_device("auto")
    if isinstance(device, torch.device):
        return device
    return resolve_device(device)


def _check_format(state: Any, path: Path) -> dict[str, Any]:
    fmt = state.get("format") if isinstance(state, dict) else None
    if fmt != CHECKPOINT_FORMAT:
        raise UserError(
            f"{path}: not a classifier checkpoint (format {fmt!r}, expected "
            f"{CHECKPOINT_FORMAT!r}); pass a classifier run, not a GAN run"
        )
    missing = [k for k in ("model_config", "class_names", "model") if k not in state]
    if not any(k in state for k in (CONFIG_KEY, *LEGACY_CONFIG_KEYS)):
        missing.insert(1, CONFIG_KEY)
    if missing:
        raise UserError(
            f"{path}: classifier checkpoint lacks {', '.join(missing)}; retrain the run"
        )
    return state


def load_classifier(
    run: str | Path,
    which: str = "best",
    runs_dir: str | Path = "runs",
    device: str | torch.device | None = None,
) -> LoadedClassifier:
    """Rebuild the model of ``runs_dir/run`` (or the run folder ``run``) from ``best.pt`` or
    ``last.pt`` and load its weights."""
    run_dir = resolve_run_dir(run, runs_dir)
    path = checkpoint_path(run_dir, which)
    state = _check_format(load_checkpoint(path, map_location="cpu"), path)
    model_config = ModelConfig.from_dict(state["model_config"])
    class_names = list(state["class_names"])
    if model_config.num_classes != len(class_names):
        raise UserError(
            f"{path}: {model_config.num_classes} model outputs but {len(class_names)} "
            "class names; the checkpoint is inconsistent, retrain the run"
        )
    model = build_model(model_config)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise UserError(
            f"{path}: weights do not fit the {model_config.name} model ({first}); "
            "was the checkpoint written by another version?"
        ) from exc
    target = target_device(device)
    model = model.to(target, memory_format=memory_format(target)).eval()
    return LoadedClassifier(
        model=model,
        model_config=model_config,
        train_config=TrainConfig.from_dict(checkpoint_config(state, path)),
        class_names=class_names,
        run_dir=run_dir,
        checkpoint_path=path,
        device=target,
        which=which,
        epoch=int(state.get("epoch", 0)),
        best_epoch=state.get("best_epoch"),
        val_acc=state.get("val_acc"),
    )
