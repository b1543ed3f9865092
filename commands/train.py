"""``cli train``: train one classifier into ``runs/NAME/`` (options mirror TrainConfig)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from classify.names import CBAM_POOL_TYPES, TRAIN_ON
from classify.training.config import TrainConfig
from classify.training.presets import CLASSIFIER_PRESETS
from commands.command import command_class
from commands.common import user_errors
from commands.configs import given, run_training
from commands.options import (
    PRESET,
    Augment,
    BatchSize,
    ClassifierPreset,
    Data,
    Device,
    DistTimeout,
    Epochs,
    FinetuneLr,
    FinetuneRealEpochs,
    FreezeBackboneEpochs,
    ImageSize,
    InitFrom,
    InitWeightsFile,
    LearningRate,
    Model,
    Name,
    Nproc,
    Optimizer,
    Overwrite,
    PatchSize,
    Pretrained,
    Progress,
    ResizeMode,
    Resume,
    RunsDir,
    Scheduler,
    SplitSeed,
    Strict,
    SyncBn,
    SyntheticBatch,
    SyntheticBn,
    SyntheticLabels,
    SyntheticRatio,
    SyntheticWeight,
    Teacher,
    Temperature,
    TrainSeed,
    ValFraction,
    VitDepth,
    VitHeads,
    WeightDecay,
    Width,
    Workers,
    choice,
    comma_list,
)
from core.distributed import DistConfig, is_main
from core.progress import console

_D = TrainConfig()
_DIST = DistConfig()


def train_command(
    ctx: typer.Context,
    preset: ClassifierPreset = PRESET,
    model: Model = _D.model,
    data: Data = Path(_D.data),
    name: Name = _D.name,
    runs_dir: RunsDir = Path(_D.runs_dir),
    epochs: Epochs = _D.epochs,
    batch_size: BatchSize = _D.batch_size,
    lr: LearningRate = _D.lr,
    optimizer: Optimizer = _D.optimizer,
    momentum: Annotated[float, typer.Option(help="SGD momentum.")] = _D.momentum,
    nesterov: Annotated[
        bool, typer.Option("--nesterov/--no-nesterov", help="Nesterov momentum (SGD).")
    ] = _D.nesterov,
    weight_decay: WeightDecay = _D.weight_decay,
    scheduler: Scheduler = _D.scheduler,
    warmup_epochs: Annotated[
        float,
        typer.Option(help="Linear warm-up of the cosine schedule (at most 1/4 of the run)."),
    ] = _D.warmup_epochs,
    label_smoothing: Annotated[
        float, typer.Option(help="Label smoothing of the training loss.")
    ] = _D.label_smoothing,
    image_size: ImageSize = _D.image_size,
    width: Width = _D.width,
    patch_size: PatchSize = _D.patch_size,
    vit_depth: VitDepth = _D.vit_depth,
    vit_heads: VitHeads = _D.vit_heads,
    cbam_pool_types: Annotated[
        str,
        typer.Option(
            metavar="<pool,...>",
            help="CBAM channel-gate pools, comma-separated, from "
            + ",".join(CBAM_POOL_TYPES)
            + ".",
            callback=comma_list(CBAM_POOL_TYPES),
        ),
    ] = ",".join(_D.cbam_pool_types),
    resize_mode: ResizeMode = _D.resize_mode,
    augment: Augment = _D.augment,
    hflip: Annotated[
        bool, typer.Option("--hflip/--no-hflip", help="Random horizontal flips.")
    ] = _D.hflip,
    val_fraction: ValFraction = _D.val_fraction,
    split_seed: SplitSeed = _D.split_seed,
    seed: TrainSeed = _D.seed,
    device: Device = _D.device,
    workers: Workers = _D.workers,
    strict: Strict = _D.strict,
    synthetic: Annotated[
        Path | None,
        typer.Option(
            help="A `cli synthesize` folder (<class>/*.png + manifest.json) added to the training "
            "split; validation and test stay real."
        ),
    ] = None,
    synthetic_ratio: SyntheticRatio = _D.synthetic_ratio,
    train_on: Annotated[
        choice(TRAIN_ON),
        typer.Option(help="real (+ --synthetic) or synthetic only (what `cli cas` does)."),
    ] = _D.train_on,
    epoch_size: Annotated[
        int | None,
        typer.Option(
            help="Images drawn per epoch (default: the whole training set); set it to the real "
            "set's size to give an augmented run its baseline's number of optimizer steps."
        ),
    ] = _D.epoch_size,
    synthetic_batch: SyntheticBatch = _D.synthetic_batch,
    synthetic_weight: SyntheticWeight = _D.synthetic_weight,
    synthetic_labels: SyntheticLabels = _D.synthetic_labels,
    teacher: Teacher = _D.teacher,
    temperature: Temperature = _D.temperature,
    synthetic_bn: SyntheticBn = _D.synthetic_bn,
    finetune_real_epochs: FinetuneRealEpochs = _D.finetune_real_epochs,
    finetune_lr: FinetuneLr = _D.finetune_lr,
    pretrained: Pretrained = _D.pretrained,
    weights: InitWeightsFile = None,
    init_from: InitFrom = _D.init_from,
    freeze_backbone_epochs: FreezeBackboneEpochs = _D.freeze_backbone_epochs,
    resume: Resume = False,
    overwrite: Overwrite = False,
    progress: Progress = True,
    nproc: Nproc = _DIST.nproc,
    sync_bn: SyncBn = _DIST.sync_bn,
    dist_timeout: DistTimeout = _DIST.dist_timeout,
) -> None:
    """Train a classifier on a folder-per-class dataset.

    Writes RUNS_DIR/NAME/: config.json, history.jsonl, last.pt and best.pt (by validation
    accuracy). Ctrl-C saves and tells how to resume.

    --resume continues with the run's saved settings and refuses options that differ from them,
    except --data, --device, --workers and --epochs (raise it to extend the run; the learning-rate
    schedule is then recomputed over the new total; refused once a --finetune-real-epochs phase
    has begun).

    Synthetic images (--synthetic): mixed into the batches (default), or added to full real
    batches (--synthetic-batch B), weighted (--synthetic-weight), softly labelled by a real-trained
    --teacher, normalised by their own BatchNorm (--synthetic-bn separate), then fine-tuned on the
    real images alone (--finetune-real-epochs).

    Initial weights: --pretrained imagenet (torchvision's), --weights FILE (a torchvision-layout
    state dict) or --init-from RUN (a run of ours); the options they imply (torchvision: width 1.0
    and --image-size 224; a run: its architecture and image size) replace the preset's and the
    defaults unless given. --freeze-backbone-epochs K trains only the head for K epochs first.

    Several processes: `torchrun --nproc-per-node N cli.py train ...` (or --nproc N); --batch-size
    is then the global batch, and a run resumes on any number of processes.
    """
    from classify.training.init_weights import with_source_defaults
    from classify.training.trainer import train

    explicit = set(given(ctx))

    def train_new_or_resumed(cfg: TrainConfig, **flags: Any) -> Any:
        if not flags["resume"]:  # a resumed run keeps its saved settings
            cfg = with_source_defaults(cfg, explicit)
        return train(cfg, **flags)

    result = run_training(train_new_or_resumed, TrainConfig, CLASSIFIER_PRESETS, ctx)
    if result is None or not is_main():  # --nproc: rank 0 of the workers printed it
        return
    best = (
        f"best val acc {result.best_val_acc:.2%} (epoch {result.best_epoch})"
        if result.best_val_acc is not None
        else "no validation split (best.pt = last epoch)"
    )
    console.print(
        f"{result.run_dir}: {result.epochs} epochs, {best}, "
        f"{result.seconds_per_epoch:.1f} s/epoch; next: `cli evaluate {name} --runs-dir {runs_dir}`",
        highlight=False,
        soft_wrap=True,
    )


EXAMPLES = """Examples:

cli train --model resnet50-cbam --name cbam
cli train --data data/shoes --preset full --model resnet50-se --name shoes-se --device cuda
cli train --model resnet50-cbam --name cbam-aug --synthetic synthetic/gan --synthetic-batch 32
cli train --name cbam --resume --epochs 24
cli train --model resnet50-se --pretrained imagenet --freeze-backbone-epochs 2 --name se-in1k
"""


def register(app: typer.Typer) -> None:
    app.command("train", cls=command_class(presets=CLASSIFIER_PRESETS), epilog=EXAMPLES)(
        user_errors(train_command)
    )
