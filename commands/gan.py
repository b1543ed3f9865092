"""``cli gan-train`` and ``cli synthesize`` (options mirror GanConfig and SynthConfig)."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer

from augment.gan.config import LOSS_NAMES, POLICY_PARTS, PRESETS, GanConfig, SynthConfig
from commands.common import user_errors
from core.progress import console, err_console

_G = GanConfig()
_S = SynthConfig(gan="")


def gan_train_command(
    ctx: typer.Context,
    data: Path = typer.Option(Path(_G.data), help="Dataset folder; only its train/ split is read."),
    name: str = typer.Option(_G.name, help="Run name: the run is written to RUNS_DIR/NAME/."),
    preset: str | None = typer.Option(
        None,
        help=f"Named settings ({' | '.join(PRESETS)}); explicit options override them. quick: "
        + ", ".join(f"{k}={v}" for k, v in PRESETS["quick"].items())
        + ".",
    ),
    iterations: int = typer.Option(
        _G.iterations, help="D+G steps (with --resume: may be raised to extend)."
    ),
    batch_size: int = typer.Option(_G.batch_size, help="Real (and fake) images per step."),
    image_size: int = typer.Option(_G.image_size, help="32 | 64 | 128 px."),
    z_size: int = typer.Option(_G.z_size, help="Noise dimension."),
    embed_dim: int = typer.Option(_G.embed_dim, help="G's class-embedding size (concat to z)."),
    ngf: int = typer.Option(_G.ngf, help="Generator width (channels of its last block)."),
    ndf: int = typer.Option(_G.ndf, help="Discriminator width (channels of its first block)."),
    spectral_norm: bool = typer.Option(
        _G.spectral_norm, "--spectral-norm/--no-spectral-norm", help="Spectral norm in D."
    ),
    minibatch_std: bool = typer.Option(
        _G.minibatch_std,
        "--minibatch-std/--no-minibatch-std",
        help="Minibatch-std channel in D (Karras et al. 2018) against mode collapse.",
    ),
    lr: float = typer.Option(_G.lr, help="Adam learning rate of G (and D unless --lr-d)."),
    lr_d: float | None = typer.Option(_G.lr_d, help="Adam learning rate of D (default: --lr)."),
    beta1: float = typer.Option(_G.beta1, help="Adam beta1."),
    beta2: float = typer.Option(_G.beta2, help="Adam beta2."),
    loss: str = typer.Option(_G.loss, help=" | ".join(LOSS_NAMES)),
    diffaugment: str = typer.Option(
        _G.diffaugment, help=f'DiffAugment policy from {",".join(POLICY_PARTS)}; "" disables.'
    ),
    ema_decay: float = typer.Option(_G.ema_decay, help="EMA decay of G's weights (warmed up)."),
    per_class_models: bool = typer.Option(
        _G.per_class_models,
        "--per-class-models",
        help="One unconditional DCGAN per class instead of one conditional model.",
    ),
    eval_every: int = typer.Option(
        _G.eval_every, help="Iterations between sample grids, FID/KID and last.pt (and at the end)."
    ),
    fid_samples: int = typer.Option(
        _G.fid_samples, help="Generated images per class for FID/KID (0: no FID; best.pt = last)."
    ),
    feature_extractor: str = typer.Option(
        _G.feature_extractor, help="FID features: inception (standard) | random-conv (smoke tests)."
    ),
    grid_columns: int = typer.Option(_G.grid_columns, help="Samples per class in the grids."),
    log_every: int = typer.Option(_G.log_every, help="Iterations per history.jsonl line."),
    seed: int = typer.Option(_G.seed, help="Seed of initialisation, batches, noise, augmentation."),
    device: str = typer.Option(_G.device, help="auto | cpu | cuda (auto: CUDA when present)."),
    workers: int = typer.Option(_G.workers, help="Threads decoding images (0: inline)."),
    resize_mode: str = typer.Option(_G.resize_mode, help="crop | squash | pad."),
    strict: bool = typer.Option(_G.strict, "--strict", help="Unreadable images are an error."),
    runs_dir: Path = typer.Option(Path(_G.runs_dir), help="Folder holding the runs."),
    resume: bool = typer.Option(False, "--resume", help="Continue RUNS_DIR/NAME from last.pt."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Train the class-conditional DCGAN (or --per-class-models) on DATA/train into RUNS_DIR/NAME/:
    config.json, history.jsonl, samples/iter_*.png, last.pt and best.pt (best mean per-class FID).
    Ctrl-C saves last.pt; --resume continues exactly (only --iterations, --eval-every, --log-every,
    --device, --workers and --data may change)."""
    _prefer_passive_openmp()
    from augment.gan.config import preset_config
    from augment.gan.trainer import GanInterrupted, train_gan
    from core.io import load_checkpoint, prepare_run_dir

    values: dict[str, Any] = {
        "data": str(data), "name": name, "runs_dir": str(runs_dir), "iterations": iterations,
        "batch_size": batch_size, "image_size": image_size, "z_size": z_size,
        "embed_dim": embed_dim, "ngf": ngf, "ndf": ndf, "spectral_norm": spectral_norm,
        "minibatch_std": minibatch_std, "lr": lr,
        "lr_d": lr_d, "beta1": beta1, "beta2": beta2, "loss": loss, "diffaugment": diffaugment,
        "ema_decay": ema_decay, "per_class_models": per_class_models, "eval_every": eval_every,
        "fid_samples": fid_samples, "feature_extractor": feature_extractor,
        "grid_columns": grid_columns, "log_every": log_every, "seed": seed, "device": device,
        "workers": workers, "resize_mode": resize_mode, "strict": strict,
    }  # fmt: skip
    given = {k: v for k, v in values.items() if _given(ctx, k)}
    if resume:
        run_dir = runs_dir / name
        prepare_run_dir(run_dir, resume=True, overwrite=overwrite)  # checks only
        saved = GanConfig.from_dict(load_checkpoint(run_dir / "last.pt")["config"])
        cfg = replace(saved, **{**given, "name": name, "runs_dir": str(runs_dir)})
    else:
        cfg = preset_config(preset, **{**given, "name": name, "runs_dir": str(runs_dir)})
    try:
        result = train_gan(cfg, resume=resume, overwrite=overwrite, progress=progress)
    except GanInterrupted as stop:
        err_console.print(f"[yellow]{stop.message}[/yellow]", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
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
    gan: str = typer.Option(..., "--gan", help="GAN run name (under --runs-dir) or folder."),
    per_class: int = typer.Option(_S.per_class, help="Images to write per class."),
    out: Path | None = typer.Option(None, help="Output folder (default: synthetic/<gan>)."),
    checkpoint: str = typer.Option(_S.checkpoint, help="best | last."),
    seed: int = typer.Option(_S.seed, help="Noise seed: the same seed gives identical images."),
    batch_size: int = typer.Option(_S.batch_size, help="Images per generator call."),
    filter_with: str | None = typer.Option(
        None, help="Classifier run: keep only samples it assigns to their class (see below)."
    ),
    min_confidence: float = typer.Option(
        _S.min_confidence, help="With --filter-with: minimum probability of the intended class."
    ),
    max_draw_factor: int = typer.Option(
        _S.max_draw_factor, help="With --filter-with: stop a class after this many x its count."
    ),
    fid: bool = typer.Option(_S.fid, "--fid/--no-fid", help="Score FID/KID into the manifest."),
    untrained_reference: bool = typer.Option(
        _S.untrained_reference,
        "--untrained-reference/--no-untrained-reference",
        help="Also score an untrained generator at the same sample sizes (FID's chance level).",
    ),
    feature_extractor: str = typer.Option(
        _S.feature_extractor, help="FID features: inception | random-conv (smoke tests)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    runs_dir: Path = typer.Option(Path(_S.runs_dir), help="Folder holding the runs."),
    device: str = typer.Option(_S.device, help="auto | cpu | cuda."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Write PER_CLASS images per class from a trained GAN into OUT/<class>/ with manifest.json
    (source checkpoint and hash, seed, counts, per-class FID/KID against the real training images
    next to the real-vs-real floor). With --filter-with, a class that cannot reach its count within
    --max-draw-factor x draws keeps what it has, with a warning (recorded in the manifest)."""
    _prefer_passive_openmp()
    from augment.synthesize import synthesize

    cfg = SynthConfig(
        gan=gan, per_class=per_class, out=str(out) if out else None, checkpoint=checkpoint,
        seed=seed, batch_size=batch_size, filter_with=filter_with, min_confidence=min_confidence,
        max_draw_factor=max_draw_factor, overwrite=overwrite, runs_dir=str(runs_dir),
        device=device, fid=fid, untrained_reference=untrained_reference,
        feature_extractor=feature_extractor,
    )  # fmt: skip
    manifest = synthesize(cfg, progress=progress)
    _print_manifest(manifest)


def _print_manifest(manifest: dict[str, Any]) -> None:
    from rich.table import Table

    fid = manifest["fid"]
    if fid.get("computed", True):
        table = Table(title=f"FID / KID vs real train ({fid['extractor']})")
        untrained = fid.get("untrained_generator") or {}
        for column in ("class", "images", "FID", "KID x1000", "real-vs-real FID", "KID x1000",
                       "untrained-G FID"):  # fmt: skip
            table.add_column(column, justify="left" if column == "class" else "right")
        for name in manifest["class_names"]:
            s, r, u = fid["per_class"].get(name), fid["real_vs_real"][name], untrained.get(name)
            table.add_row(
                name, str(manifest["counts"][name]),
                f"{s['fid']:.1f}" if s else "-", f"{1000 * s['kid_mean']:.1f}" if s else "-",
                f"{r['fid']:.1f}", f"{1000 * r['kid_mean']:.1f}", f"{u['fid']:.1f}" if u else "-",
            )  # fmt: skip
        overall, chance = fid["overall"], fid.get("untrained_generator_overall")
        table.add_row("all", str(sum(manifest["counts"].values())), f"{overall['fid']:.1f}",
                      f"{1000 * overall['kid_mean']:.1f}", "", "",
                      f"{chance['fid']:.1f}" if chance else "-")  # fmt: skip
        console.print(table)
        console.print("lower is closer to the real images; the real-vs-real floor is the best a "
                      "generator can reach at these sample sizes, the untrained generator the "
                      "worst", style="dim")  # fmt: skip
    console.print(f"wrote {manifest['out']} ({sum(manifest['counts'].values())} images)",
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


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was set on the command line (or by environment), not defaulted."""
    # Compared by name: Typer >= 0.2x ships its own copy of click, whose ParameterSource enum is
    # not click.core.ParameterSource.
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def register(app: typer.Typer) -> None:
    app.command("gan-train")(user_errors(gan_train_command))
    app.command("synthesize")(user_errors(synthesize_command))
