"""What a classifier trains and validates on, in memory: the decoded training split, its seeded
stratified validation part, optional synthetic images; and the evaluation pass over such tensors.

The test split is never read here (only evaluation reads it). The synthetic images of
``TrainConfig.synthetic`` (:mod:`classify.training.synthetic`) join the training part only, after the split, so
validation stays real.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from classify.training.batches import ordered_batches
from classify.training.config import TrainConfig
from core.data import DatasetIndex, ImageTensors, load_samples, to_model_input
from core.device import autocast, memory_format
from core.errors import UserError
from core.ranks import map_sharded
from core.split import SplitRecord, split_train


@dataclass
class TrainingSet:
    """What a run trains and validates on. ``train`` may hold synthetic images after the real ones
    (its last ``n_synthetic``: indices ``n_real`` and up); ``val`` is real only."""

    train: ImageTensors
    val: ImageTensors
    real_train_counts: list[int]  # per class, before synthetic images were added
    split: SplitRecord  # the real images trained on, under the study's split (split.json)
    synthetic: dict[str, Any] | None = None
    n_synthetic: int = 0  # the synthetic images at the end of ``train`` (all of it for CAS)

    @property
    def n_real(self) -> int:
        """The real images at the start of ``train``."""
        return len(self.train) - self.n_synthetic


def build_training_set(
    cfg: TrainConfig, index: DatasetIndex, progress: Callable[[int], None] | None = None
) -> TrainingSet:
    """Decode the training split, carve the study's validation split out of it (seeded by
    ``cfg.split_seed``, :func:`core.split.split_train`), and append the synthetic images of
    ``cfg.synthetic`` (if any) to the training part."""
    full = load_samples(
        index.train,
        index.class_names,
        cfg.image_size,
        resize_mode=cfg.resize_mode,
        workers=cfg.workers,
        strict=cfg.strict,
        progress=progress,
    )
    train, val = split_train(full, cfg.split_seed, cfg.val_fraction)
    if len(train) < 2:
        raise UserError(f"{index.root / 'train'}: {len(train)} training image(s); need at least 2")
    real_counts = train.class_counts()
    split = SplitRecord.of(train, seed=cfg.split_seed, val_fraction=cfg.val_fraction)
    synthetic, n_synthetic = None, 0
    if cfg.synthetic is not None:
        from classify.training.synthetic import concat, load_synthetic

        extra, synthetic = load_synthetic(cfg, train, val)
        if cfg.train_on == "synthetic":  # CAS: no real image is learned from
            train, split = extra, SplitRecord(cfg.split_seed, cfg.val_fraction, True)
        else:
            train = concat(train, extra)
        n_synthetic = len(extra)
    elif cfg.train_on == "synthetic":
        raise UserError("--train-on synthetic needs --synthetic DIR (a `cli synthesize` folder)")
    return TrainingSet(train, val, real_counts, split, synthetic, n_synthetic)


@torch.inference_mode()
def evaluate(
    model: nn.Module, data: ImageTensors, device: torch.device, batch_size: int
) -> tuple[float, float]:
    """Mean cross-entropy (no label smoothing) and accuracy of ``model`` on ``data``, in eval mode.

    With several processes the batches are dealt to the ranks (:func:`core.ranks.map_sharded`)
    and their sums added up in batch order on every rank: the numbers of one process."""
    was_training = model.training
    model.eval()

    def batch_sums(idx: Tensor) -> tuple[float, int]:
        x = to_device(data.images[idx], device)
        y = to_device(data.labels[idx], device)
        with autocast(device):
            logits = model(to_model_input(x).contiguous(memory_format=memory_format(device)))
        loss = F.cross_entropy(logits.float(), y, reduction="sum").item()
        return loss, int((logits.argmax(1) == y).sum().item())

    loss_sum, correct = 0.0, 0
    for loss, hits in map_sharded(ordered_batches(len(data), batch_size), batch_sums):
        loss_sum += loss
        correct += hits
    model.train(was_training)
    return loss_sum / len(data), correct / len(data)


def to_device(tensor: Tensor, device: torch.device) -> Tensor:
    """Copy to ``device``; on CUDA from pinned memory without blocking, overlapping compute."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
