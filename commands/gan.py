"""``cli gan-train`` and ``cli synthesize`` (options mirror GanConfig and SynthConfig)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from augment.gan.config import (
    GAN_PRESETS,
    IMAGE_SIZES,
    LOSS_NAMES,
    POLICY_PARTS,
    GanConfig,
    SynthConfig,
)
from commands.common import user_errors
from commands.options import (
    BatchSize,
    Data,
    Device,
    FeatureExtractor,
    Name,
    Overwrite,
    Progress,
    ResizeMode,
    Resume,
    RunsDir,
    Strict,
    TrainSeed,
    Workers,
    choice,
    comma_list,
    config_of,
    preset_help,
    run_training,
)
from core.manifest import FidScores, Manifest
from core.progress import console

_G = GanConfig()
_S = SynthConfig(gan="")
_POLICY_HELP = f'DiffAugment policy from {",".join(POLICY_PARTS)}; "" disables.'


def gan_train_command(
    ctx: typer.Context,
    data: Data = Path(_G.data),
    name: Name = _G.name,
    preset: Annotated[
        str | None, typer.Option(help=preset_help(GAN_PRESETS, "Named settings"))
    ] = None,
    iterations: Annotated[
        int, typer.Option(help="D+G steps (with --resume: may be raised to extend).")
    ] = _G.iterations,
    batch_size: BatchSize = _G.batch_size,
    image_size: Annotated[
        choice(IMAGE_SIZES), typer.Option(help="Square image size (px).")
    ] = _G.image_size,
    z_size: Annotated[int, typer.Option(help="Noise dimension.")] = _G.z_size,
    embed_dim: Annotated[
        int, typer.Option(help="G's class-embedding size (concat to z).")
    ] = _G.embed_dim,
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
            help=_POLICY_HELP,
            callback=comma_list(POLICY_PARTS, allow_empty=True),
        ),
    ] = _G.diffaugment,
    ema_decay: Annotated[
        float, typer.Option(help="EMA decay of G's weights (warmed up).")
    ] = _G.ema_decay,
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
    feature_extractor: FeatureExtractor = _G.feature_extractor,
    grid_columns: Annotated[
        int, typer.Option(help="Samples per class in the grids.")
    ] = _G.grid_columns,
    log_every: Annotated[
        int, typer.Option(help="Iterations per history.jsonl line.")
    ] = _G.log_every,
    seed: TrainSeed = _G.seed,
    device: Device = _G.device,
    workers: Workers = _G.workers,
    resize_mode: ResizeMode = _G.resize_mode,
    strict: Strict = _G.strict,
    runs_dir: RunsDir = Path(_G.runs_dir),
    resume: Resume = False,
    overwrite: Overwrite = False,
    progress: Progress = True,
) -> None:
    """Train the class-conditional DCGAN (or --per-class-models) on DATA/train (only that split
    is read) into RUNS_DIR/NAME/: config.json, history.jsonl, samples/iter_*.png, last.pt and
    best.pt (best mean per-class FID). Ctrl-C saves last.pt; --resume continues exactly (only
    --iterations, --eval-every, --log-every, --device, --workers and --data may change)."""
    _prefer_passive_openmp()
    from augment.gan.trainer import train_gan

    result = run_training(train_gan, GanConfig, GAN_PRESETS, ctx)
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


def synthesize_command(
    ctx: typer.Context,
    gan: Annotated[str, typer.Option("--gan", help="GAN run name (under --runs-dir) or folder.")],
    per_class: Annotated[int, typer.Option(help="Images to write per class.")] = _S.per_class,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: synthetic/<gan>).")
    ] = None,
    checkpoint: Annotated[str, typer.Option(help="best (lowest mean FID) | last.")] = _S.checkpoint,
    seed: Annotated[
        int, typer.Option(help="Noise seed: the same seed gives identical images.")
    ] = _S.seed,
    batch_size: Annotated[int, typer.Option(help="Images per generator call.")] = _S.batch_size,
    filter_with: Annotated[
        str | None,
        typer.Option(
            help="Classifier run: keep only samples it assigns to their class (see below)."
        ),
    ] = _S.filter_with,
    min_confidence: Annotated[
        float, typer.Option(help="With --filter-with: minimum probability of the intended class.")
    ] = _S.min_confidence,
    max_draw_factor: Annotated[
        int, typer.Option(help="With --filter-with: stop a class after this many x its count.")
    ] = _S.max_draw_factor,
    fid: Annotated[
        bool, typer.Option("--fid/--no-fid", help="Score FID/KID into the manifest.")
    ] = _S.fid,
    untrained_reference: Annotated[
        bool,
        typer.Option(
            "--untrained-reference/--no-untrained-reference",
            help="Also score an untrained generator at the same sample sizes (FID's chance level).",
        ),
    ] = _S.untrained_reference,
    feature_extractor: FeatureExtractor = _S.feature_extractor,
    overwrite: Overwrite = _S.overwrite,
    runs_dir: RunsDir = Path(_S.runs_dir),
    device: Device = _S.device,
    progress: Progress = True,
) -> None:
    """Write PER_CLASS images per class from a trained GAN into OUT/<class>/ with manifest.json
    (source checkpoint and hash, seed, counts, per-class FID/KID against the real training images
    next to the real-vs-real floor). With --filter-with, a class that cannot reach its count within
    --max-draw-factor x draws keeps what it has, with a warning (recorded in the manifest)."""
    _prefer_passive_openmp()
    from augment.synthesize import synthesize

    manifest = synthesize(config_of(SynthConfig, ctx), progress=progress)
    _print_manifest(manifest)


def _print_manifest(manifest: Manifest) -> None:
    from rich.table import Table

    fid, counts = manifest.fid or FidScores(), manifest.counts or {}
    if fid.computed is not False:
        table = Table(title=f"FID / KID vs real train ({fid.extractor})")
        untrained = fid.untrained_generator or {}
        for column in ("class", "images", "FID", "KID x1000", "real-vs-real FID", "KID x1000",
                       "untrained-G FID"):  # fmt: skip
            table.add_column(column, justify="left" if column == "class" else "right")
        for name in manifest.class_names or []:
            s, r, u = (fid.per_class or {}).get(name), fid.real_vs_real[name], untrained.get(name)
            table.add_row(
                name, str(counts[name]),
                f"{s.fid:.1f}" if s else "-", f"{1000 * s.kid_mean:.1f}" if s else "-",
                f"{r.fid:.1f}", f"{1000 * r.kid_mean:.1f}", f"{u.fid:.1f}" if u else "-",
            )  # fmt: skip
        overall, chance = fid.overall, fid.untrained_generator_overall
        table.add_row("all", str(sum(counts.values())), f"{overall.fid:.1f}",
                      f"{1000 * overall.kid_mean:.1f}", "", "",
                      f"{chance.fid:.1f}" if chance else "-")  # fmt: skip
        console.print(table)
        console.print("lower is closer to the real images; the real-vs-real floor is the best a "
                      "generator can reach at these sample sizes, the untrained generator the "
                      "worst", style="dim")  # fmt: skip
    console.print(f"wrote {manifest.out} ({sum(counts.values())} images)",
                  highlight=False, soft_wrap=True)  # fmt: skip


def _prefer_passive_openmp() -> None:
    """Let idle OpenMP threads sleep instead of spinning, unless the user chose otherwise.

    Measured on this 2-core machine while other jobs ran (cDCGAN step, batch 64, 32 px): 2 threads
    with the default (spinning) policy 528 ms, passive 147 ms, 1 thread 126 ms; under heavier load
    the spinning default was 10-25x slower. libgomp reads the variable when torch is first imported,
    so this only helps before that (as in the CLI, whose commands import torch lazily).
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def register(app: typer.Typer) -> None:
    app.command("gan-train")(user_errors(gan_train_command))
    app.command("synthesize")(user_errors(synthesize_command))
