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

from augment.gan.config import GAN_PRESETS
from classify.classical.spec import DEFAULT_CROP, parse_augment
from classify.explain.methods import CAM_METHODS, FAITHFULNESS_METRICS
from classify.names import (
    CROPS,
    MIXES,
    MODEL_NAMES,
    OPTIMIZERS,
    POLICIES,
    PRETRAINED,
    SCHEDULERS,
    SYNTHETIC_BN,
    SYNTHETIC_LABELS,
)
from classify.training.config import DEFAULT_LR, DEFAULT_WEIGHT_DECAY, FINETUNE_LR_FACTOR
from classify.training.presets import CLASSIFIER_PRESETS
from core.errors import UserError
from core.names import DEVICES, RESIZE_MODES
from core.presets import NO_PRESET, Presets

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


def preset_help(presets: Presets, what: str = "Named settings") -> str:
    named = "; ".join(f"{name}: {presets.describe(name)}" for name in presets.names)
    return (
        f"{what} ({named}; {NO_PRESET}: the options' own defaults); options given explicitly "
        "override it."
    )


# --- run folders, devices, data ----------------------------------------------------------------

RunsDir = Annotated[Path, typer.Option("--runs-dir", help="Folder holding the runs.")]
Run = Annotated[
    str, typer.Argument(metavar="RUN", help="Run name under --runs-dir, or a path to a run folder.")
]
Device = Annotated[
    str,
    typer.Option(
        "--device",
        metavar="<" + "|".join(DEVICES) + "|cuda:N>",
        help="Where to compute (auto: CUDA when present; cuda:N picks one GPU).",
    ),
]
Workers = Annotated[int, typer.Option("--workers", help="Threads decoding images (0: inline).")]
Data = Annotated[
    Path,
    typer.Option(
        "--data",
        help="Dataset folder with train/<class>/ and test/<class>/ (`cli data footwear` writes "
        "the default one).",
    ),
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
    str,
    typer.Option(
        "--name", metavar="<name>", help="Run name: the run is written to RUNS_DIR/NAME/."
    ),
]
Checkpoint = Annotated[
    str,
    typer.Option(
        "--checkpoint",
        metavar="<best|last|path>",
        help="The run's best.pt (highest validation accuracy), its last.pt, or a .pt file (a "
        "relative path is looked for in each run folder first).",
    ),
]
GanCheckpoint = Annotated[
    str,
    typer.Option(
        "--checkpoint",
        metavar="<best|last|path>",
        help="The GAN run's best.pt (lowest mean FID), its last.pt, or a .pt file (a relative "
        "path is looked for in the run folder first).",
    ),
]
TrainPerClass = Annotated[
    int, typer.Option("--train-per-class", help="Footwear training images per class.")
]

# --- classifier training (fields of TrainConfig) -------------------------------------------------

ClassifierPreset = Annotated[
    choice(CLASSIFIER_PRESETS.choices),
    typer.Option("--preset", help=preset_help(CLASSIFIER_PRESETS, "Training preset")),
]
GanPreset = Annotated[
    choice(GAN_PRESETS.choices),
    typer.Option("--preset", help=preset_help(GAN_PRESETS, "GAN preset")),
]
# --preset's default in every command that takes it: the settings measured to train well on 2 CPU
# cores (PipelineConfig.preset holds the same name).
PRESET = "quick"
Model = Annotated[
    choice(MODEL_NAMES),
    typer.Option("--model", help="Model registry key (`cli models` shows each one's size)."),
]
Models = Annotated[
    str,
    typer.Option(
        "--models",
        metavar="<model,...>",
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
        metavar="<crop[,policy][,mix]>",
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
        metavar="<run>",
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
    typer.Option(
        "--cam-method",
        help="Class activation map method of the maps and their faithfulness score. "
        + ", ".join(_SLOW)
        + ": one forward pass per channel of the target layer (2,048 for ResNet-50) per image: "
        "fine on a GPU, ~20 s per 64 px image on a CPU.",
    ),
]
CamPerClass = Annotated[
    int,
    typer.Option(
        "--cam-per-class",
        help="Seeded-random test images per class in the maps and their faithfulness score "
        "(0: none).",
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
        metavar="IMAGES",
        help="Image files to explain (true label unknown, shown as '?'); default: "
        "--cam-per-class test images.",
    ),
]
ExplainPerClass = Annotated[
    int,
    typer.Option(
        "--cam-per-class",
        help="Seeded-random test images per class in the maps and their faithfulness score.",
    ),
]
ExplainSeed = Annotated[
    int, typer.Option("--seed", help="Seed of the test-image choice and ROAD's noise.")
]
Rollout = Annotated[
    bool,
    typer.Option(
        "--rollout/--no-rollout",
        help="Also attention rollout of ViTs (Abnar & Zuidema 2020): the attention of every "
        "block, not only one's.",
    ),
]

# --- synthetic sets ------------------------------------------------------------------------------

SyntheticPerClass = Annotated[int, typer.Option("--per-class", help="Synthetic images per class.")]
ScorePerClass = Annotated[
    int,
    typer.Option(
        "--score-per-class",
        help="Score FID/KID, precision/recall and density/coverage on the first N synthetic "
        "images of each class (and as many real and untrained-generator images): the scores fall "
        "as the sample grows, so a fixed N compares sets of any size; 240 is the default footwear "
        "set's training images per class. 0: every image.",
    ),
]


# --- initial weights of a classifier (fields of TrainConfig; classify.training.init_weights) ----

Pretrained = Annotated[
    choice(PRETRAINED),
    typer.Option(
        "--pretrained",
        help="imagenet: start from torchvision's ImageNet weights of --model (resnet50 and its "
        "SE / CBAM variants, whose new gates keep their own initialisation; vit-b16), found in "
        "$TORCH_HOME/hub/checkpoints or downloaded there; the model then normalises its input as "
        "the weights expect, and --image-size defaults to their crop size (224).",
    ),
]
InitWeightsFile = Annotated[
    Path | None,
    typer.Option(
        "--weights",
        help="Start from a local state dict in torchvision's layout (a resnet50 or vit_b_16 "
        "torch.save(model.state_dict()) file), treated as ImageNet weights are.",
    ),
]
InitFrom = Annotated[
    str | None,
    typer.Option(
        "--init-from",
        metavar="<run>",
        help="Start from a classifier run's best.pt (folder, or name under --runs-dir): its "
        "--model, --width, ViT shape and --image-size unless given (a given architecture must "
        "be the run's); the head is replaced when the classes differ.",
    ),
]
FreezeBackboneEpochs = Annotated[
    int,
    typer.Option(
        "--freeze-backbone-epochs",
        help="The first K epochs train only the classifier head (and SE / CBAM gates new to "
        "torchvision weights); the backbone's weights and BatchNorm statistics stay as loaded, "
        "then everything trains.",
    ),
]


# --- photos with ImageNet weights instead of a run (classify.pretrained_model) ---------------

RunOrPhoto = Annotated[
    str,
    typer.Argument(
        metavar="RUN",
        help="Run name under --runs-dir, or a path to a run folder; with --pretrained or "
        "--weights: the first image file.",
    ),
]
PhotoPretrained = Annotated[
    choice(PRETRAINED),
    typer.Option(
        "--pretrained",
        help="imagenet: no run; every positional argument is an image file, classified by --model "
        "with torchvision's ImageNet weights (found in $TORCH_HOME/hub/checkpoints or downloaded "
        "there) into ImageNet's 1000 classes, each photo resized and cropped as the weights' own "
        "transforms do.",
    ),
]
PhotoWeights = Annotated[
    Path | None,
    typer.Option(
        "--weights",
        help="As --pretrained imagenet, with a local state dict in torchvision's layout (a "
        "resnet50 or vit_b_16 torch.save(model.state_dict()) file with its 1000-class head) "
        "instead of the downloaded weights.",
    ),
]


def photo_model(default: str) -> Any:
    """``--model`` of a command that also reads runs: the architecture for --pretrained /
    --weights (None when not given: ``default`` there, and nothing with a run)."""
    return Annotated[
        choice(MODEL_NAMES) | None,
        typer.Option(
            "--model",
            help=f"With --pretrained or --weights: the architecture (default {default}; resnet50 "
            "or an SE / CBAM variant of it, or vit-b16). A run brings its own.",
        ),
    ]


CnnPhotoModel = photo_model("resnet50")  # predict, gradcam
VitPhotoModel = photo_model("vit-b16")  # attention


def photos_or_run(
    name: str,
    images: Sequence[Path] | None,
    pretrained: str,
    weights: Path | None,
    model: str | None,
) -> list[Path] | None:
    """The image files when --pretrained or --weights replace the run (every positional argument
    is then an image), else None (``name`` is the run); refuse --model with a run."""
    if pretrained == "none" and weights is None:
        if model is not None:
            raise UserError(
                f"--model {model}: a run brings its own model; --model goes with --pretrained "
                "imagenet or --weights FILE (then every positional argument is an image)"
            )
        return None
    return [Path(name), *(images or [])]
