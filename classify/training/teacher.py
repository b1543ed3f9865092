"""Soft targets for synthetic images from a classifier trained on real ones
(``--synthetic-labels teacher``).

A conditional GAN's sample of class c is not always a convincing c: taught with its hard label,
an ambiguous sample is taught as certain. Knowledge distillation (Hinton, Vinyals & Dean 2015,
"Distilling the Knowledge in a Neural Network") instead trains on a teacher's class probabilities
softened by a temperature T, ``softmax(teacher_logits / T)``, which carry how much each sample
looks like every class. The student here keeps its own logits at T = 1 and takes the soft targets
in the ordinary cross-entropy (``F.cross_entropy`` accepts probabilities), so no T^2 factor is
needed: that factor compensates for the 1 / T^2 gradient scale of a student softened by T too.
``--label-smoothing``, when set, smooths these targets as well (as it smooths mixed ones), and a
mix (mixup, CutMix) mixes them like any class probabilities.

The targets are computed once, at the start of a run, on the un-augmented synthetic images, with
the teacher's ``best.pt`` in eval mode and without autograd (batched, sharded over the ranks of a
multi-process run), and kept in memory: never stored in a checkpoint, recomputed on resume (the
same numbers, as inference is deterministic; their hash in the checkpoint tells when not).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from classify.training.batches import ordered_batches
from classify.training.config import TrainConfig
from classify.training.trainset import TrainingSet
from core.data import ImageTensors
from core.errors import UserError
from core.ranks import map_sharded
from core.split import check_learner, describe_split

TEACHER_CHECKPOINT = "best"


@dataclass(frozen=True)
class TeacherTargets:
    """The teacher's softened probabilities for the synthetic images, and what config.json says."""

    probs: Tensor  # N_synthetic x K, float32, CPU; rows sum to 1
    info: dict[str, Any]
    digest: str  # sha256 of ``probs``


def soften(logits: Tensor, temperature: float) -> Tensor:
    """``softmax(logits / temperature)`` over the classes, in float32."""
    return torch.softmax(logits.float() / temperature, dim=1)


def teacher_targets(
    cfg: TrainConfig,
    images: Tensor,
    labels: Tensor,
    class_names: list[str],
    val: ImageTensors,
    device: torch.device,
) -> TeacherTargets:
    """Load ``cfg.teacher`` and soften its logits on ``images`` (uint8, un-augmented) by
    ``cfg.temperature``; one-line errors for a teacher of other classes or another image size."""
    from classify.checkpoint import load_classifier

    assert cfg.teacher is not None
    teacher = load_classifier(cfg.teacher, TEACHER_CHECKPOINT, runs_dir=cfg.runs_dir, device=device)
    if teacher.class_names != class_names:
        raise UserError(
            f"--teacher {cfg.teacher}: trained on classes {teacher.class_names}, this run has "
            f"{class_names}; use a run trained on this dataset"
        )
    if teacher.image_size != cfg.image_size:
        raise UserError(
            f"--teacher {cfg.teacher}: trained at {teacher.image_size} px, this run at "
            f"--image-size {cfg.image_size}; use a teacher of the same image size"
        )
    check_learner(
        "--teacher", teacher.run_dir, val, describe_split(cfg.split_seed, cfg.val_fraction)
    )
    batches = ordered_batches(len(images), cfg.batch_size)
    logits = map_sharded(batches, lambda idx: teacher.predict_logits(images[idx], len(idx)))
    probs = soften(torch.cat(logits), cfg.temperature)
    agreement = float((probs.argmax(1) == labels).float().mean().item())
    info = {
        "run": cfg.teacher,
        "checkpoint": TEACHER_CHECKPOINT,
        "epoch": teacher.epoch,
        "val_acc": teacher.val_acc,
        "agreement": agreement,  # share of synthetic images whose teacher argmax is the GAN label
    }
    digest = hashlib.sha256(probs.contiguous().numpy().tobytes()).hexdigest()
    return TeacherTargets(probs, info, digest)


def soft_target_table(labels: Tensor, n_real: int, probs: Tensor, num_classes: int) -> Tensor:
    """Targets for every training image (N x K): one-hot labels for the ``n_real`` real ones,
    then the teacher's probabilities for the synthetic ones."""
    real = torch.nn.functional.one_hot(labels[:n_real], num_classes).float()
    return torch.cat([real, probs])


def soft_targets_of(
    cfg: TrainConfig, data: TrainingSet, device: torch.device
) -> tuple[Tensor | None, TeacherTargets | None]:
    """With ``--synthetic-labels teacher``: the targets of every training image
    (:func:`soft_target_table`) and the teacher's; otherwise (None, None)."""
    if cfg.synthetic_labels != "teacher":
        return None, None
    train, n_real = data.train, data.n_real
    names = train.class_names
    synthetic = train.images[n_real:], train.labels[n_real:]
    teacher = teacher_targets(cfg, *synthetic, names, data.val, device)
    return soft_target_table(train.labels, n_real, teacher.probs, len(names)), teacher
