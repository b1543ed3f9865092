"""``cli cas`` and ``cli pipeline``."""

from __future__ import annotations

from pathlib import Path

import typer

from classify.training.presets import CLASSIFIER_PRESETS
from commands.common import user_errors
from core.progress import console, err_console
from study.pipeline.config import PIPELINE_PRESETS, PipelineConfig

_P = PipelineConfig()


def cas_command(
    synthetic: Path = typer.Option(..., help="A `cli synthesize` folder (with manifest.json)."),
    model: str = typer.Option("resnet50-cbam", help="Model registry key."),
    name: str | None = typer.Option(None, help="Run name (default: cas-<synthetic folder name>)."),
    data: Path | None = typer.Option(
        None, help="The real dataset (default: the one named in the manifest)."
    ),
    preset: str | None = typer.Option(
        "quick", help=f"Training preset: {', '.join(CLASSIFIER_PRESETS)} (options override it)."
    ),
    epochs: int | None = typer.Option(None, help="Epochs."),
    image_size: int | None = typer.Option(None, help="Square image size (px)."),
    width: float | None = typer.Option(None, help="Channel multiplier."),
    seed: int = typer.Option(0, help="Seed."),
    baseline: str | None = typer.Option(
        None, help="A real-data run of the same architecture to report beside the CAS."
    ),
    runs_dir: Path = typer.Option(Path("runs"), help="Folder holding the runs."),
    device: str = typer.Option("auto", help="auto | cpu | cuda."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted CAS run."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing CAS run."),
) -> None:
    """Classification Accuracy Score (Ravuri & Vinyals 2019): train on the synthetic images only,
    test on the real test set. Written into the synthetic set's manifest.json under "cas"."""
    from classify.checkpoint import resolve_run_dir
    from classify.training.config import TrainConfig
    from classify.training.presets import apply_preset
    from study.cas import cas_config, run_cas, synthetic_dataset

    explicit = {
        "data": str(data) if data else synthetic_dataset(synthetic),
        "model": model, "epochs": epochs, "image_size": image_size, "width": width,
        "seed": seed, "runs_dir": str(runs_dir), "device": device,
    }  # fmt: skip
    base = apply_preset(TrainConfig(), preset, explicit)
    cfg = cas_config(base, synthetic, name or f"cas-{synthetic.name}")
    baseline_dir = resolve_run_dir(baseline, runs_dir) if baseline else None
    result = run_cas(cfg, baseline_run=baseline_dir, resume=resume, overwrite=overwrite)
    line = f"CAS of {synthetic}: test accuracy [bold]{result['test_acc']:.2%}[/bold], "
    line += f"macro-F1 {result['macro_f1']:.3f} ({cfg.model}, trained on synthetic images only)"
    if "real_baseline" in result:
        line += f"; the same model on real images: {result['real_baseline']['test_acc']:.2%}"
    console.print(line, highlight=False)


def pipeline_command(
    data: Path | None = typer.Option(
        None, help="Dataset folder (default: the embedded footwear set, written if missing)."
    ),
    preset: str = typer.Option(_P.preset, help=" | ".join(PIPELINE_PRESETS)),
    per_class: int = typer.Option(_P.per_class, help="Synthetic images per class."),
    synthetic_ratio: float | None = typer.Option(
        None,
        help="Synthetic images per real image in the augmented run (default: all of them).",
    ),
    seeds: int = typer.Option(_P.seeds, help="Classifier seeds (baseline and augmented each)."),
    train_per_class: int = typer.Option(
        _P.train_per_class, help="Footwear training images per class (embedded data only)."
    ),
    models: str = typer.Option(",".join(_P.models), help="Comma-separated registry keys."),
    runs_dir: Path = typer.Option(Path(_P.runs_dir), help="Folder holding the runs."),
    synthetic_dir: Path = typer.Option(Path(_P.synthetic_dir), help="Folder of synthetic sets."),
    reports_dir: Path = typer.Option(Path(_P.reports_dir), help="Folder of reports."),
    data_dir: Path = typer.Option(Path(_P.data_dir), help="Where the footwear set is written."),
    device: str = typer.Option(_P.device, help="auto | cpu | cuda."),
    cas: bool = typer.Option(_P.cas, "--cas/--no-cas", help="Also score the GAN by CAS."),
    cam_per_class: int = typer.Option(_P.cam_per_class, help="Grad-CAM images per class."),
    epochs: int | None = typer.Option(None, help="Override the preset's classifier epochs."),
    width: float | None = typer.Option(None, help="Override the preset's channel multiplier."),
    image_size: int | None = typer.Option(None, help="Override the preset's image size."),
    gan_iterations: int | None = typer.Option(None, help="Override the preset's GAN iterations."),
    gan_width: int | None = typer.Option(None, help="Override the GAN's ngf and ndf."),
    feature_extractor: str = typer.Option(
        _P.feature_extractor, hidden=True, help="FID features (tests use a stand-in)."
    ),
) -> None:
    """The whole study: data -> the classifiers -> the best by validation accuracy -> gan-train
    -> synthesize -> the best architecture retrained on real + synthetic -> compare -> CAS.
    Finished steps are skipped, so running it again after an interruption resumes it."""
    from rich.table import Table

    from classify.training.trainer import TrainInterrupted
    from core.errors import UserError
    from study.pipeline.runner import run_pipeline

    if preset not in PIPELINE_PRESETS:
        raise UserError(f"--preset {preset!r}: choose one of {', '.join(PIPELINE_PRESETS)}")
    classifier = {"epochs": epochs, "width": width, "image_size": image_size}
    gan = {"iterations": gan_iterations, "ngf": gan_width, "ndf": gan_width}
    if gan_iterations is not None:
        gan["eval_every"] = gan_iterations
    cfg = PipelineConfig(
        data=str(data) if data else None,
        preset=preset,
        per_class=per_class,
        synthetic_ratio=synthetic_ratio,
        seeds=seeds,
        train_per_class=train_per_class,
        models=tuple(m.strip() for m in models.split(",") if m.strip()),
        runs_dir=str(runs_dir),
        synthetic_dir=str(synthetic_dir),
        reports_dir=str(reports_dir),
        data_dir=str(data_dir),
        device=device,
        cas=cas,
        cam_per_class=cam_per_class,
        classifier={k: v for k, v in classifier.items() if v is not None},
        gan={k: v for k, v in gan.items() if v is not None},
        feature_extractor=feature_extractor,
    )
    try:
        study = run_pipeline(cfg)
    except (TrainInterrupted, KeyboardInterrupt) as stop:
        err_console.print(f"[yellow]interrupted: {stop}[/yellow]", highlight=False)
        err_console.print("run the same command again to resume where it stopped", highlight=False)
        raise typer.Exit(130) from None
    console.print(summary_table(study, Table))
    console.print(f"report: [bold]{study['report']}[/bold]", highlight=False)


def summary_table(study: dict, table_cls: type) -> object:
    table = table_cls(title=f"study on {study['data']} ({study['preset']} preset)")
    table.add_column("what")
    table.add_column("result", justify="right")
    for summary in study["classifiers"]:
        for row in summary["runs"]:
            table.add_row(
                f"{row['run']} (val / test acc)", f"{row['val_acc']:.2%} / {row['test_acc']:.2%}"
            )
    table.add_row("best architecture (val acc)", study["best_model"])
    untrained = study["fid"].get("untrained_generator") or {}
    for name, value in study["fid"]["per_class"].items():
        floor = study["fid"]["real_vs_real"].get(name)
        chance = untrained.get(name)
        table.add_row(
            f"FID {name} (floor / synthetic / untrained G)",
            f"{floor:.1f} / [bold]{value:.1f}[/bold] / "
            + (f"{chance:.1f}" if chance is not None else "-"),
        )
    comparison = study.get("comparison") or {}
    if comparison.get("verdict"):
        table.add_row("verdict", comparison["verdict"])
    if study.get("cas"):
        table.add_row("CAS (train synthetic, test real)", f"{study['cas']['test_acc']:.2%}")
    for step in study["steps"]:
        table.add_row(f"step {step['step']}", f"{step['status']} {step['seconds']:.0f} s")
    return table


def register(app: typer.Typer) -> None:
    app.command("cas")(user_errors(cas_command))
    app.command("pipeline")(user_errors(pipeline_command))
