"""``cli gan-train`` (options mirror GanConfig; ``cli synthesize`` is :mod:`commands.synthesize`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from augment.gan.config import (
    G_CONDITIONINGS,
    GAN_PRESETS,
    IMAGE_SIZES,
    LOSS_NAMES,
    POLICY_PARTS,
    GanConfig,
    SynthConfig,
)
from commands.command import command_class
from commands.common import user_errors
from commands.configs import run_training
from commands.options import (
    PRESET,
    BatchSize,
    Data,
    Device,
    DistTimeout,
    GanPreset,
    Name,
    Nproc,
    Overwrite,
    Progress,
    ResizeMode,
    Resume,
    RunsDir,
    SplitSeed,
    Strict,
    SyncBn,
    TrainSeed,
    ValFraction,
    Workers,
    choice,
    comma_list,
)
from core.distributed import DistConfig, is_main
from core.progress import console

_G = GanConfig()
_DIST = DistConfig()
_S = SynthConfig(gan="")
_POLICY_HELP = f'DiffAugment policy from {",".join(POLICY_PARTS)}; "" disables.'


def gan_train_command(
    ctx: typer.Context,
    data: Data = Path(_G.data),
    name: Name = _G.name,
    preset: GanPreset = PRESET,
    iterations: Annotated[
        int, typer.Option(help="D+G steps (with --resume: may be raised to extend).")
    ] = _G.iterations,
    batch_size: BatchSize = _G.batch_size,
    image_size: Annotated[
        choice(IMAGE_SIZES), typer.Option(help="Images are resized to this square size (px).")
    ] = _G.image_size,
    z_size: Annotated[int, typer.Option(help="Noise dimension.")] = _G.z_size,
    embed_dim: Annotated[
        int, typer.Option(help="G's class-embedding size (concat to z).")
    ] = _G.embed_dim,
    g_conditioning: Annotated[
        choice(G_CONDITIONINGS),
        typer.Option(
            help="How G reads the class: concat (embedding joined to z) | cbn (class-dependent "
            "BatchNorm gain and bias, Miyato & Koyama 2018)."
        ),
    ] = _G.g_conditioning,
    ngf: Annotated[
        int, typer.Option(help="Generator width (channels of its last block).")
    ] = _G.ngf,
    ndf: Annotated[
        int, typer.Option(help="Discriminator width (channels of its first block).")
    ] = _G.ndf,
    spectral_norm: Annotated[
        bool, typer.Option("--spectral-norm/--no-spectral-norm", help="Spectral norm in D.")
    ] = _G.spectral_norm,
    minibatch_std: Annotated[
        bool,
        typer.Option(
            "--minibatch-std/--no-minibatch-std",
            help="Minibatch-std channel in D (Karras et al. 2018) against mode collapse.",
        ),
    ] = _G.minibatch_std,
    lr: Annotated[
        float, typer.Option(help="Adam learning rate of G (and D unless --lr-d).")
    ] = _G.lr,
    lr_d: Annotated[
        float | None, typer.Option(help="Adam learning rate of D (default: --lr).")
    ] = _G.lr_d,
    beta1: Annotated[float, typer.Option(help="Adam beta1.")] = _G.beta1,
    beta2: Annotated[float, typer.Option(help="Adam beta2.")] = _G.beta2,
    loss: Annotated[choice(LOSS_NAMES), typer.Option(help="Adversarial loss.")] = _G.loss,
    diffaugment: Annotated[
        str,
        typer.Option(
            metavar="<part,...>",
            help=_POLICY_HELP,
            callback=comma_list(POLICY_PARTS, allow_empty=True),
        ),
    ] = _G.diffaugment,
    lecam_weight: Annotated[
        float,
        typer.Option(help="LeCam regularisation of D (Tseng et al. 2021; paper 0.3; 0: off)."),
    ] = _G.lecam_weight,
    lecam_decay: Annotated[
        float, typer.Option(help="Decay of LeCam's running means of D's outputs.")
    ] = _G.lecam_decay,
    ada_target: Annotated[
        float | None,
        typer.Option(
            help="Adapt the DiffAugment probability p so that the mean sign of D on real images "
            "meets this (ADA, Karras et al. 2020: 0.6); default/0: always augment."
        ),
    ] = _G.ada_target,
    ada_interval: Annotated[
        int, typer.Option(help="With --ada-target: iterations between adjustments of p.")
    ] = _G.ada_interval,
    ada_kimg: Annotated[
        float, typer.Option(help="With --ada-target: thousand images for p to go from 0 to 1.")
    ] = _G.ada_kimg,
    r1_gamma: Annotated[
        float,
        typer.Option(
            help="R1 penalty gamma on D's gradient at real images (Mescheder et al. 2018; 0: off)."
        ),
    ] = _G.r1_gamma,
    r1_interval: Annotated[
        int, typer.Option(help="Apply R1 every N iterations, weighted N times (lazy R1).")
    ] = _G.r1_interval,
    ema_decay: Annotated[
        float, typer.Option(help="EMA decay of G's weights (warmed up).")
    ] = _G.ema_decay,
    standing_stats: Annotated[
        int,
        typer.Option(
            help="Sample the EMA generator with BatchNorm statistics re-estimated over N batches "
            "(BigGAN's standing statistics); 0: the statistics copied from G."
        ),
    ] = _G.standing_stats,
    per_class_models: Annotated[
        bool,
        typer.Option(
            "--per-class-models",
            help="One unconditional DCGAN per class instead of one conditional model.",
        ),
    ] = _G.per_class_models,
    eval_every: Annotated[
        int,
        typer.Option(help="Iterations between sample grids, FID/KID and last.pt (and at the end)."),
    ] = _G.eval_every,
    fid_samples: Annotated[
        int,
        typer.Option(help="Generated images per class for FID/KID (0: no FID; best.pt = last)."),
    ] = _G.fid_samples,
    grid_columns: Annotated[
        int, typer.Option(help="Samples per class in the grids.")
    ] = _G.grid_columns,
    log_every: Annotated[
        int, typer.Option(help="Iterations per history.jsonl line.")
    ] = _G.log_every,
    seed: TrainSeed = _G.seed,
    split_seed: SplitSeed = _G.split_seed,
    val_fraction: ValFraction = _G.val_fraction,
    use_all_train: Annotated[
        bool,
        typer.Option(
            "--use-all-train",
            help="Learn from every train/ image, the validation split included. Classifiers "
            "that validate on that split then choose with images the GAN saw: `cli train "
            "--synthetic` warns and the report says so.",
        ),
    ] = _G.use_all_train,
    device: Device = _G.device,
    workers: Workers = _G.workers,
    resize_mode: ResizeMode = _G.resize_mode,
    strict: Strict = _G.strict,
    runs_dir: RunsDir = Path(_G.runs_dir),
    resume: Resume = False,
    overwrite: Overwrite = False,
    progress: Progress = True,
    nproc: Nproc = _DIST.nproc,
    sync_bn: SyncBn = _DIST.sync_bn,
    dist_timeout: DistTimeout = _DIST.dist_timeout,
    seeds: Annotated[
        int,
        typer.Option(
            help="Train the GAN under N seeds (--seed .. --seed+N-1) as NAME-sSEED, synthesize "
            "and score each, and report every metric as mean ± std in RUNS_DIR/NAME-seeds/.",
        ),
    ] = 1,
    score_per_class: Annotated[
        int,
        typer.Option(
            help="With --seeds: images per class synthesized and scored per seed (as many as "
            "`synthesize` and `pipeline` score by default: FID falls as the sample grows, so "
            "sets are scored at one size)."
        ),
    ] = _S.score_per_class,
    synthetic_dir: Annotated[
        Path, typer.Option(help="With --seeds: folder for the seeds' synthetic sets.")
    ] = Path("synthetic"),
    cas_model: Annotated[
        str | None,
        typer.Option(
            metavar="<model>",
            help="With --seeds: also train this classifier on each seed's synthetic set (CAS, "
            "the same-named classifier preset as --preset).",
        ),
    ] = None,
) -> None:
    """Train the class-conditional DCGAN on a dataset's training images.

    Reads DATA/train only (less the validation split) and writes RUNS_DIR/NAME/: config.json,
    history.jsonl, samples/iter_NNNNNN.png, last.pt and best.pt (best mean per-class FID, or the
    last with --fid-samples 0). Ctrl-C saves last.pt; --resume continues exactly (only
    --iterations, --eval-every, --fid-samples, --log-every, --device, --workers and --data may
    change).

    Several processes (torchrun, or --nproc N): --batch-size is the global batch, D and G are
    DistributedDataParallel, each process draws its own seeded noise and augmentation.

    --seeds N: N runs NAME-sSEED, each synthesized (--score-per-class) and scored, optionally
    CAS (--cas-model); mean ± std of every metric in RUNS_DIR/NAME-seeds/summary.md.
    """
    prefer_passive_openmp()
    if seeds != 1:
        from commands.gan_seeds import run_gan_seeds

        return run_gan_seeds(ctx, seeds, score_per_class, str(synthetic_dir), cas_model)
    from augment.gan.trainer import train_gan

    result = run_training(train_gan, GanConfig, GAN_PRESETS, ctx)
    if result is None or not is_main():  # --nproc: rank 0 of the workers printed it
        return
    best = (
        f"best mean FID {result.best_fid:.1f} at iteration {result.best_iteration}"
        if result.best_fid is not None
        else "FID off (best.pt = last)"
    )
    console.print(
        f"{result.run_dir}: {result.iterations} iterations, {best}; samples in "
        f"{result.run_dir / 'samples'}; next: `cli synthesize --gan {name} --runs-dir {runs_dir}`",
        highlight=False,
        soft_wrap=True,
    )


def prefer_passive_openmp() -> None:
    """Let idle OpenMP threads sleep instead of spinning, unless the user chose otherwise.

    Measured on this 2-core machine while other jobs ran (cDCGAN step, batch 64, 32 px): 2 threads
    with the default (spinning) policy 528 ms, passive 147 ms, 1 thread 126 ms; under heavier load
    the spinning default was 10-25x slower. libgomp reads the variable when torch is first imported,
    so this only helps before that (as in the CLI, whose commands import torch lazily).
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


EXAMPLES = """Examples:

cli gan-train --name gan
cli gan-train --data data/shoes --preset full --name shoes-gan --device cuda
cli gan-train --name gan --seeds 3 --cas-model resnet50
"""


def register(app: typer.Typer) -> None:
    app.command("gan-train", cls=command_class(presets=GAN_PRESETS), epilog=EXAMPLES)(
        user_errors(gan_train_command)
    )
