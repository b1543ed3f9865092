"""The options more than one command takes, each declared once as an ``Annotated`` type, and the
helpers that turn the options a user gave into a config dataclass.

A command writes ``device: Device = TrainConfig.device``-style defaults read from its config
dataclass, so the dataclass stays the single source of every default. Choices are ``Literal``
types built from the registries' torch-free name tuples (``classify.names``, ``core.names``), so
Typer validates them (exit code 2) and lists them in ``--help`` without the help text naming them,
and building ``--help`` imports no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer

from classify.classical.spec import DEFAULT_CROP, parse_augment
from classify.explain.methods import CAM_METHODS, FAITHFULNESS_METRICS
from classify.names import (
    CROPS,
    MIXES,
    MODEL_NAMES,
    OPTIMIZERS,
    POLICIES,
    SCHEDULERS,
    SYNTHETIC_BN,
    SYNTHETIC_LABELS,
)
from classify.training.config import DEFAULT_LR, DEFAULT_WEIGHT_DECAY, FINETUNE_LR_FACTOR
from classify.training.presets import CLASSIFIER_PRESETS
from core.errors import UserError
from core.names import DEVICES, RESIZE_MODES
from core.presets import Presets

C = TypeVar("C")
R = TypeVar("R")


def choice(names: Sequence[Any]) -> Any:
    """A ``Literal`` of a registry's names: Typer shows them as the metavar and refuses others."""
    return Literal[tuple(names)]  # type: ignore[valid-type]


def comma_list(names: Sequence[str], *, allow_empty: bool = False) -> Callable[[str], str]:
    """A Typer callback that refuses a comma-separated list with a name outside ``names``."""

    def check(value: str) -> str:
        parts = [p.strip() for p in value.split(",") if p.strip()]
        unknown = [p for p in parts if p not in names]
        if unknown or not (parts or allow_empty):
            raise typer.BadParameter(
                f"{value!r}: use a comma-separated subset of {','.join(names)}"
                + (' (or "" for none)' if allow_empty else "")
            )
        return value

    return check


def preset_help(presets: Presets, what: str) -> str:
    named = "; ".join(f"{name}: {presets.describe(name)}" for name in presets.names)
    return f"{what} ({named}); options given explicitly override it."


# --- run folders, devices, data ----------------------------------------------------------------

RunsDir = Annotated[Path, typer.Option("--runs-dir", help="Folder holding the runs.")]
Run = Annotated[str, typer.Argument(help="Run name under --runs-dir, or a path to a run folder.")]
Device = Annotated[
    str,
    typer.Option(
        "--device", help=" | ".join(DEVICES) + " (auto: CUDA when present; cuda:N picks one GPU)."
    ),
]
Workers = Annotated[int, typer.Option("--workers", help="Threads decoding images (0: inline).")]
Data = Annotated[
    Path, typer.Option("--data", help="Dataset folder with train/<class>/ and test/<class>/.")
]
RunData = Annotated[
    Path | None,
    typer.Option(
        "--data", help="Dataset folder, when it moved since training (default: the run's)."
    ),
]
Strict = Annotated[
    bool, typer.Option("--strict", help="Unreadable images are an error, not skipped.")
]
ResizeMode = Annotated[
    choice(RESIZE_MODES), typer.Option("--resize-mode", help="How images become square.")
]
Resume = Annotated[
    bool,
    typer.Option(
        "--resume", help="Continue RUNS_DIR/NAME from its last.pt (finished runs are kept as is)."
    ),
]
Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Replace an existing output of the same name.")
]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")]
Name = Annotated[
    str, typer.Option("--name", help="Run name: the run is written to RUNS_DIR/NAME/.")
]
Checkpoint = Annotated[
    str, typer.Option("--checkpoint", help="best (highest val accuracy) or last.")
]
CheckpointFile = Annotated[
    str,
    typer.Option(
        "--checkpoint",
        help="Which checkpoint: best (highest val accuracy) or last (or a path to a .pt file).",
    ),
]
TrainPerClass = Annotated[
    int, typer.Option("--train-per-class", help="Footwear training images per class.")
]

# --- classifier training (fields of TrainConfig) -------------------------------------------------

ClassifierPreset = Annotated[
    str | None, typer.Option("--preset", help=preset_help(CLASSIFIER_PRESETS, "Training preset"))
]
Model = Annotated[
    choice(MODEL_NAMES),
    typer.Option("--model", help="Model registry key (`cli models` shows each one's size)."),
]
Models = Annotated[
    str,
    typer.Option(
        "--models",
        help="Comma-separated model registry keys, from " + ",".join(MODEL_NAMES) + ".",
        callback=comma_list(MODEL_NAMES),
    ),
]
Epochs = Annotated[
    int | None,
    typer.Option("--epochs", help="Epochs to train (with --resume: may be raised to extend)."),
]
BatchSize = Annotated[
    int,
    typer.Option(
        "--batch-size",
        help="Images per training step (with several processes: the global batch, split evenly "
        "among them).",
    ),
]
LearningRate = Annotated[
    float | None,
    typer.Option(
        "--lr",
        help="Peak learning rate (default: "
        + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items())
        + ").",
        show_default=False,
    ),
]
Optimizer = Annotated[choice(OPTIMIZERS), typer.Option("--optimizer", help="Optimizer.")]
WeightDecay = Annotated[
    float | None,
    typer.Option(
        "--weight-decay",
        help="Weight decay on conv/linear weights, never on BatchNorm or biases (default: "
        + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_WEIGHT_DECAY.items())
        + ").",
        show_default=False,
    ),
]
Scheduler = Annotated[
    choice(SCHEDULERS),
    typer.Option("--scheduler", help="Learning-rate schedule, stepped every batch."),
]
ImageSize = Annotated[
    int | None, typer.Option("--image-size", help="Images are resized to this square size (px).")
]
Width = Annotated[
    float | None,
    typer.Option(
        "--width",
        help="Channel multiplier (depth kept); e.g. 0.25 for CPU. ViT: scales the embedding width.",
    ),
]
PatchSize = Annotated[
    int,
    typer.Option(
        "--patch-size", help="ViT patch size in px (0: image size / 8, an 8 x 8 token grid)."
    ),
]
VitDepth = Annotated[int, typer.Option("--vit-depth", help="ViT blocks (0: the named size's).")]
VitHeads = Annotated[
    int, typer.Option("--vit-heads", help="ViT attention heads (0: the named size's).")
]


def _augment_value(value: str) -> str:
    """Typer callback: refuse an ``--augment`` value that classify.classical.spec cannot parse."""
    try:
        parse_augment(value)
    except UserError as err:
        raise typer.BadParameter(str(err).split(": ", 1)[1]) from None
    return value


Augment = Annotated[
    str,
    typer.Option(
        "--augment",
        metavar="CROP[,POLICY][,MIX]",
        help=f"Train-time augmentation, comma-separated: a crop ({'|'.join(CROPS)}; default "
        f"{DEFAULT_CROP}), optionally a per-sample policy ({'|'.join(POLICIES)}) and a batch mix "
        f"with soft targets ({'|'.join(MIXES)}); e.g. trivialaugment,mixup. Applied as policy, "
        "crop, flip, mix.",
        callback=_augment_value,
    ),
]
ValFraction = Annotated[
    float,
    typer.Option("--val-fraction", help="Stratified validation share of train/."),
]
SplitSeed = Annotated[
    int,
    typer.Option(
        "--split-seed",
        help="Seed of the validation split carved out of train/: the study's, not a run's, so "
        "every seed, arm and the GAN hold out the same images.",
    ),
]
TrainSeed = Annotated[
    int,
    typer.Option(
        "--seed",
        help="Seed of everything random in training: initialisation, batches, noise, "
        "augmentation (the validation split has --split-seed).",
    ),
]
SyntheticRatio = Annotated[
    float | None,
    typer.Option(
        "--synthetic-ratio",
        help="Synthetic images per real training image of each class (default: all).",
    ),
]


# --- recipes for the synthetic images (classify.training.synthetic_exposure) ---------------------

SyntheticBatch = Annotated[
    int,
    typer.Option(
        "--synthetic-batch",
        help="0: synthetic images mixed into the training set. B > 0: every step takes a full "
        "real batch as the real-only run does (same batches, steps and augmentation) plus B "
        "synthetic images (He et al. 2023: real exposure held fixed).",
    ),
]
SyntheticWeight = Annotated[
    float,
    typer.Option(
        "--synthetic-weight",
        help="Weight of the synthetic images' loss (>= 0; per sample in mixed batches).",
    ),
]
SyntheticLabels = Annotated[
    choice(SYNTHETIC_LABELS),
    typer.Option(
        "--synthetic-labels",
        help="Targets of the synthetic images: the GAN's class, or a --teacher's softened "
        "probabilities (knowledge distillation).",
    ),
]
Teacher = Annotated[
    str | None,
    typer.Option(
        "--teacher",
        help="Classifier run trained on the real images (folder, or name under --runs-dir) whose "
        "best.pt labels the synthetic images (with --synthetic-labels teacher).",
    ),
]
Temperature = Annotated[
    float,
    typer.Option("--temperature", help="Softmax temperature of the teacher's targets (> 0)."),
]
SyntheticBn = Annotated[
    choice(SYNTHETIC_BN),
    typer.Option(
        "--synthetic-bn",
        help="separate: auxiliary BatchNorm for the synthetic images (AdvProp); real images and "
        "evaluation use the main one. Needs --synthetic-batch.",
    ),
]
FinetuneRealEpochs = Annotated[
    int,
    typer.Option(
        "--finetune-real-epochs",
        help="After --epochs, this many epochs on the real images only at --finetune-lr.",
    ),
]
FinetuneLr = Annotated[
    float | None,
    typer.Option(
        "--finetune-lr",
        help=f"Constant learning rate of the finetune epochs (default: {FINETUNE_LR_FACTOR:g} "
        "x the base --lr).",
        show_default=False,
    ),
]

# --- several processes (fields of core.distributed.DistConfig) ------------------------------------

Nproc = Annotated[
    int,
    typer.Option(
        "--nproc",
        help="Train with N processes on this machine (started through torch.distributed.run, "
        "like `torchrun --standalone --nproc-per-node N`); leave at 1 under torchrun.",
    ),
]
SyncBn = Annotated[
    bool | None,
    typer.Option(
        "--sync-bn/--local-bn",
        help="With several processes: BatchNorm statistics over the global batch (SyncBatchNorm, "
        "CUDA only) or each process's share. Default: --sync-bn on CUDA, --local-bn on the CPU.",
        show_default=False,
    ),
]
DistTimeout = Annotated[
    float,
    typer.Option(
        "--dist-timeout",
        envvar="SHOEGAN_DIST_TIMEOUT",
        help="With several processes: seconds a process waits for the others before the run "
        "stops with an error (a process died or hangs).",
    ),
]

# --- explanations --------------------------------------------------------------------------------

_SLOW = [name for name, method in CAM_METHODS.items() if method.slow_on_cpu]
CamMethod = Annotated[
    choice(CAM_METHODS),
    typer.Option("--cam-method", help="Class activation map method (grid and faithfulness score)."),
]
Method = Annotated[
    choice(CAM_METHODS),
    typer.Option(
        "--method",
        help="CAM method. "
        + ", ".join(_SLOW)
        + ": one forward pass per channel of the target layer (2,048 for ResNet-50) per image: "
        "fine on a GPU, ~20 s per 64 px image on a CPU.",
    ),
]
CamPerClass = Annotated[
    int,
    typer.Option(
        "--cam-per-class", help="Test images per class for the CAM grid and score (0: skip)."
    ),
]
Metric = Annotated[
    choice(FAITHFULNESS_METRICS),
    typer.Option(
        "--metric",
        help="Faithfulness metric, higher is better for both. "
        + " | ".join(f"{k}: {m.description}" for k, m in FAITHFULNESS_METRICS.items()),
    ),
]
ExplainImages = Annotated[
    list[Path] | None,
    typer.Argument(
        help="Image files to explain (true label unknown, shown as '?'); default: "
        "--per-class test images."
    ),
]
ExplainPerClass = Annotated[
    int, typer.Option("--per-class", help="Seeded-random test images per class.")
]
ExplainSeed = Annotated[
    int, typer.Option("--seed", help="Seed of the test-image choice and ROAD's noise.")
]
Rollout = Annotated[
    bool,
    typer.Option(
        "--rollout/--no-rollout", help="Attention rollout of ViTs (Abnar & Zuidema 2020)."
    ),
]
