"""``cli cas`` and ``cli pipeline``; both run under torchrun (or ``--nproc N``) as a whole: the
training and evaluation on every process, everything else on rank 0 while the others wait."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from classify.names import MIXES, POLICIES
from classify.training.config import TrainConfig
from classify.training.presets import CLASSIFIER_PRESETS
from commands.command import command_class
from commands.common import user_errors
from commands.configs import config_of, given
from commands.options import (
    PRESET,
    CamPerClass,
    ClassifierPreset,
    Device,
    DistTimeout,
    Epochs,
    FreezeBackboneEpochs,
    ImageSize,
    InitFrom,
    InitWeightsFile,
    LearningRate,
    Model,
    Models,
    Nproc,
    Overwrite,
    Pretrained,
    Resume,
    RunsDir,
    ScorePerClass,
    SplitSeed,
    SyncBn,
    SyntheticPerClass,
    SyntheticRatio,
    TrainSeed,
    Width,
    choice,
)
from core.distributed import DistConfig
from core.presets import NO_PRESET
from core.progress import console, err_console
from study.pipeline.config import PIPELINE_PRESETS, PipelineConfig
from study.pipeline.recipes import GAN_RECIPES

_D = TrainConfig()
_P = PipelineConfig()
_DIST = DistConfig()


def cas_command(
    ctx: typer.Context,
    synthetic: Annotated[
        Path, typer.Option(help="A `cli synthesize` folder (with manifest.json).")
    ],
    model: Model = "resnet50-cbam",
    name: Annotated[
        str | None,
        typer.Option(metavar="<name>", help="Run name (default: cas-<synthetic folder name>)."),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="The real dataset (default: the one named in the manifest)."),
    ] = None,
    preset: ClassifierPreset = PRESET,
    epochs: Epochs = None,
    image_size: ImageSize = None,
    width: Width = None,
    seed: TrainSeed = _D.seed,
    baseline: Annotated[
        str | None,
        typer.Option(
            metavar="<run>",
            help="A real-data run of the same architecture to report beside the CAS.",
        ),
    ] = None,
    runs_dir: RunsDir = Path(_D.runs_dir),
    device: Device = _D.device,
    resume: Resume = False,
    overwrite: Overwrite = False,
    nproc: Nproc = _DIST.nproc,
    sync_bn: SyncBn = _DIST.sync_bn,
    dist_timeout: DistTimeout = _DIST.dist_timeout,
) -> None:
    """Classification Accuracy Score of a synthetic set: train on it, test on real images.

    Ravuri & Vinyals 2019: a classifier trained on the synthetic images only, tested on the real
    test set; written into the synthetic set's manifest.json under "cas".

    Several processes: `torchrun --nproc-per-node N cli.py cas ...` (or --nproc N), as `cli train`.
    """
    from commands.launch import launch_workers
    from core.device import join_group
    from core.distributed import on_main
    from core.rundir import resolve_run_dir
    from study.cas import cas_config, run_cas, synthetic_dataset

    dist = config_of(DistConfig, ctx).validate()
    if launch_workers(ctx, dist.nproc):
        return  # rank 0 of the workers printed the result
    join_group(device, dist.dist_timeout)  # under torchrun: rank 0 reads the inputs for all

    def configure() -> tuple[TrainConfig, Path | None]:
        explicit = {
            "data": str(data) if data else synthetic_dataset(synthetic),
            "model": model, "epochs": epochs, "image_size": image_size, "width": width,
            "seed": seed, "runs_dir": str(runs_dir), "device": device,
        }  # fmt: skip
        base = CLASSIFIER_PRESETS.apply(TrainConfig(), preset, explicit)
        cfg = cas_config(base, synthetic, name or f"cas-{synthetic.name}")
        return cfg, resolve_run_dir(baseline, runs_dir) if baseline else None

    cfg, baseline_dir = on_main(configure)
    result = run_cas(cfg, baseline_run=baseline_dir, resume=resume, overwrite=overwrite, dist=dist)
    line = f"CAS of {synthetic}: test accuracy [bold]{result['test_acc']:.2%}[/bold], "
    line += f"macro-F1 {result['macro_f1']:.3f} ({cfg.model}, trained on synthetic images only)"
    if "real_baseline" in result:
        line += f"; the same model on real images: {result['real_baseline']['test_acc']:.2%}"
    console.print(line, highlight=False)


def pipeline_command(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Dataset folder with train/<class>/ and test/<class>/ (default: the embedded "
            "footwear set, data/footwear, written if missing)."
        ),
    ] = _P.data,
    preset: Annotated[
        choice((*PIPELINE_PRESETS, NO_PRESET)),
        typer.Option(
            help="The classifier and GAN presets of that name (see train, gan-train; none: their "
            "options' own defaults); the options below override them."
        ),
    ] = _P.preset,
    per_class: SyntheticPerClass = _P.per_class,
    score_per_class: ScorePerClass = _P.score_per_class,
    synthetic_ratio: SyntheticRatio = _P.synthetic_ratio,
    gan_recipe: Annotated[
        choice(GAN_RECIPES),
        typer.Option(
            help="How the augmented run and every +gan arm take the synthetic images. separate: "
            "the baseline's real batches (every real image shown as often) plus as many synthetic "
            "images per step (He et al. 2023). mixed: the older recipe, real and synthetic in one "
            "set with the baseline's optimizer steps (so fewer real presentations); its runs and "
            "report are named -mixed.",
        ),
    ] = _P.gan_recipe,
    seeds: Annotated[
        int,
        typer.Option(
            help="Classifier seeds (every arm each); three or more for a verdict on the method."
        ),
    ] = _P.seeds,
    split_seed: SplitSeed = _P.split_seed,
    train_per_class: Annotated[
        str,
        typer.Option(
            "--train-per-class",
            help="Real training images per class (the embedded set: 240; with --data: all of "
            "yours unless given). Given with --data, a seeded subset is written to "
            "DATA_DIR/<name>-N and the study's runs are named <name>-N-... A comma list (e.g. "
            "25,50,240) runs the study at each size and draws the learning curve.",
            metavar="<int,...>",
        ),
    ] = str(_P.train_per_class),
    models: Models = ",".join(_P.models),
    arms: Annotated[
        str,
        typer.Option(
            help="Training recipes of the best model, each set against real (over seeds and test images, "
            f"Holm across arms): real, then +gan and/or +{'|'.join((*POLICIES, *MIXES))}, "
            "e.g. real,real+gan,real+trivialaugment,real+gan+trivialaugment. "
            "+gan takes modifiers after colons: :teacher (soft labels of the seed's real "
            "baseline), :separate-bn, :finetune (real-only epochs after, a quarter of the "
            "epochs), :w<N> (synthetic loss weight), :mixed or :separate (the recipe), e.g. "
            "real+gan:teacher:separate-bn+trivialaugment. real:finetune is :finetune's "
            "real-only control (the same extra real-only epochs, no synthetic image).",
            metavar="<arm,...>",
        ),
    ] = ",".join(_P.arms),
    runs_dir: RunsDir = Path(_P.runs_dir),
    synthetic_dir: Annotated[Path, typer.Option(help="Folder of synthetic sets.")] = Path(
        _P.synthetic_dir
    ),
    reports_dir: Annotated[Path, typer.Option(help="Folder of reports.")] = Path(_P.reports_dir),
    data_dir: Annotated[Path, typer.Option(help="Where the footwear set is written.")] = Path(
        _P.data_dir
    ),
    device: Device = _P.device,
    cas: Annotated[
        bool, typer.Option("--cas/--no-cas", help="Also score the GAN by CAS.")
    ] = _P.cas,
    cam_per_class: CamPerClass = _P.cam_per_class,
    epochs: Annotated[
        str | None,
        typer.Option(
            "--epochs",
            help="Epochs to train (overrides the preset's). A comma list (e.g. 12,24,48) is a "
            "budget grid: the study at each budget, each arm's budget chosen on validation "
            "accuracy (the same rule for every arm), the verdict at every budget beside it.",
            metavar="<int,...>",
        ),
    ] = None,
    width: Width = None,
    image_size: ImageSize = None,
    lr: LearningRate = None,
    gan_iterations: Annotated[
        int | None, typer.Option(help="Override the preset's GAN iterations.")
    ] = None,
    gan_width: Annotated[int | None, typer.Option(help="Override the GAN's ngf and ndf.")] = None,
    pretrained: Pretrained = TrainConfig.pretrained,
    weights: InitWeightsFile = None,
    init_from: InitFrom = TrainConfig.init_from,
    freeze_backbone_epochs: FreezeBackboneEpochs = TrainConfig.freeze_backbone_epochs,
    nproc: Nproc = _DIST.nproc,
    sync_bn: SyncBn = _DIST.sync_bn,
    dist_timeout: DistTimeout = _DIST.dist_timeout,
) -> None:
    """The whole study, from the dataset to the report, resumable.

    data -> the classifiers -> the best by validation accuracy -> gan-train -> synthesize -> the
    best architecture retrained on real + synthetic (--gan-recipe) and every --arms recipe ->
    compare -> CAS. Finished steps are skipped, so running it again after an interruption resumes
    it.

    --epochs, --width, --image-size and --lr override the classifier preset's values; a list of
    --epochs (12,24,48) runs the study at each budget and picks each arm's on validation accuracy.

    --pretrained imagenet (or --weights FILE) starts every classifier of the study from ImageNet
    weights, at their width and crop size unless --width / --image-size are given; --init-from RUN
    from a classifier run of yours (--models must be its model), at its width and image size. The
    GAN is trained from scratch as always; --freeze-backbone-epochs K trains the heads alone first.

    Several processes (`torchrun --nproc-per-node N cli.py pipeline ...`, or --nproc N): every
    training and evaluation step runs on all of them, every other step on rank 0 alone.
    """
    from rich.table import Table

    from classify.training.trainer import TrainInterrupted
    from commands.launch import launch_workers
    from core.device import join_group
    from core.distributed import is_main
    from core.ranks import main_only
    from study.pipeline.arms import parse_arms
    from study.pipeline.budgets import parse_budgets, run_budget_grid
    from study.pipeline.curve import parse_sizes, run_learning_curve, size_config
    from study.pipeline.runner import run_pipeline

    dist = config_of(DistConfig, ctx).validate()
    if launch_workers(ctx, dist.nproc):
        return  # rank 0 of the workers printed the summary
    join_group(device, dist.dist_timeout)  # under torchrun: rank 0 decides for all from here on

    def configure() -> tuple[PipelineConfig, tuple[int, ...], tuple[int, ...]]:
        budgets = parse_budgets(epochs)
        one = budgets[0] if len(budgets) == 1 else None
        classifier = {"epochs": one, "width": width, "image_size": image_size, "lr": lr,
                      "weights": str(weights) if weights else None,
                      "pretrained": pretrained if pretrained != TrainConfig.pretrained else None,
                      "init_from": init_from,
                      "freeze_backbone_epochs": freeze_backbone_epochs or None}  # fmt: skip
        gan = {"iterations": gan_iterations, "ngf": gan_width, "ndf": gan_width}
        if gan_iterations is not None:
            gan["eval_every"] = gan_iterations
        sizes = parse_sizes(train_per_class)
        cfg = config_of(
            PipelineConfig,
            ctx,
            classifier={k: v for k, v in classifier.items() if v is not None},
            gan={k: v for k, v in gan.items() if v is not None},
            train_per_class=sizes[-1],
            arms=parse_arms(arms, gan_recipe),
        )
        return cfg, sizes, budgets

    cfg, sizes, budgets = main_only(configure)  # a refusal is printed once
    grid = len(budgets) > 1

    def run_study(c: PipelineConfig) -> dict:
        return run_budget_grid(c, budgets, dist=dist) if grid else run_pipeline(c, dist)

    try:
        if len(sizes) > 1:
            curve = run_learning_curve(cfg, sizes, run_study, dist=dist)
            console.print(curve_table(curve, Table))
            console.print(f"learning curve: [bold]{curve['figure']}[/bold]", highlight=False)
            return
        if cfg.data is not None and "train_per_class" in given(ctx):
            whole = cfg  # a subset of the user's data, in DATA_DIR
            cfg = main_only(lambda: size_config(whole, sizes[0]))
        study = run_study(cfg)
    except (TrainInterrupted, KeyboardInterrupt) as stop:
        if is_main():  # rank 0 speaks for all the processes
            err_console.print(f"[yellow]interrupted: {stop}[/yellow]", highlight=False)
            err_console.print(
                "run the same command again to resume where it stopped", highlight=False
            )
        raise typer.Exit(130) from None
    if grid:
        console.print(budget_table(study, Table))
        console.print(study["arms"]["verdict"], highlight=False)
        console.print(study["arms"]["budget"], highlight=False)
    else:
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
    if study.get("gan_recipe"):
        table.add_row("GAN recipe (--gan-recipe)", study["gan_recipe"])
    untrained = study["fid"].get("untrained_generator") or {}
    for name, value in study["fid"]["per_class"].items():
        floor = study["fid"]["real_vs_real"].get(name)
        chance = untrained.get(name)
        table.add_row(
            f"FID {name} (floor / synthetic / untrained G)",
            f"{floor:.1f} / [bold]{value:.1f}[/bold] / "
            + (f"{chance:.1f}" if chance is not None else "-"),
        )
    for name, scores in (study.get("diversity") or {}).items():
        if all(v is not None for v in scores.values()):
            table.add_row(
                f"precision / recall / density / coverage {name}",
                " / ".join(f"{v:.2f}" for v in scores.values()),
            )
    from study.report.arms import delta_text, p_text

    for arm, row in ((study.get("arms") or {}).get("arms") or {}).items():
        text = f"{row['mean']:.2%}" + (f" ± {row['std']:.2%}" if row.get("std") is not None else "")
        if row.get("interval"):
            verdict = row.get("verdict") or "no verdict (fewer than 3 seeds)"
            text += (
                f"; Δ {delta_text(row['interval'])} pts over seeds + test images, Holm p "
                f"{p_text(row['interval'])}: {verdict}"
            )
        elif row.get("test_only"):
            text += f"; Δ {delta_text(row['test_only'])} pts, test-set noise only (1 seed)"
        table.add_row(f"arm {arm} (test acc)", text)
    if study.get("arms"):
        table.add_row("arms verdict", study["arms"]["verdict"])
    comparison = study.get("comparison") or {}
    if comparison.get("verdict"):
        table.add_row("verdict", comparison["verdict"])
    if study.get("cas"):
        table.add_row("CAS (train synthetic, test real)", f"{study['cas']['test_acc']:.2%}")
    for step in study["steps"]:
        table.add_row(f"step {step['step']}", f"{step['status']} {step['seconds']:.0f} s")
    return table


def curve_table(curve: dict, table_cls: type) -> object:
    """A row per size and arm: test accuracy and band, the delta against real (over seeds and
    test images; with one seed over test images only)."""
    from study.pipeline.curve import curve_arms
    from study.report.arms import delta_text

    table = table_cls(title=f"learning curve on {curve['data']} ({curve['band']})")
    for column in ("real / class", "arm", "test acc [band]", "Δ vs real (95% CI)"):
        table.add_column(column, justify="right")
    for size in curve["sizes"]:
        point = curve["points"][str(size)]
        for arm in curve_arms(curve):
            p = point[arm]
            name = f"{arm} ({p['epochs']} ep.)" if "epochs" in p else arm
            text = f"{p['mean']:.2%} [{p['low']:.1%}, {p['high']:.1%}]"
            d = p.get("delta")
            delta = f"{delta_text(d)} pts ({d.get('source', 'pooled')})" if d else ""
            table.add_row(str(size), name, text, delta)
    return table


def budget_table(grid: dict, table_cls: type) -> object:
    """Per arm: validation / test accuracy at each budget (the chosen budget marked), and the
    selected arm's delta against real at its chosen budget."""
    from study.pipeline.arms import headline
    from study.report.arms import delta_text

    table = table_cls(title=f"budgets on {grid['data']} ({grid['seeds']} seed(s))")
    table.add_column("arm")
    for epochs in grid["budgets"]:
        table.add_column(f"{epochs} ep.: val / test", justify="right")
    table.add_column("chosen: Δ vs real (95% CI)", justify="right")
    for arm, row in grid["arms"]["arms"].items():
        cells = []
        for epochs in grid["budgets"]:
            cell = grid["grid"][str(epochs)][arm]
            text = f"{cell['val']:.1%} / {cell['test']:.1%}"
            cells.append(f"[bold]{text}[/bold]" if grid["chosen"][arm] == epochs else text)
        p = headline(row)
        chosen = f"{grid['chosen'][arm]} ep."
        if p:
            chosen += f": {delta_text(p)} ({p['source']})"
        table.add_row(arm, *cells, chosen)
    return table


PIPELINE_EXAMPLES = """Examples:

cli pipeline
cli pipeline --arms real,real+gan,real+trivialaugment --seeds 3
cli pipeline --data data/shoes --preset full --device cuda
cli pipeline --epochs 12,24,48
cli pipeline --train-per-class 25,50,240
"""


def register(app: typer.Typer) -> None:
    app.command("cas", cls=command_class(presets=CLASSIFIER_PRESETS))(user_errors(cas_command))
    app.command("pipeline", epilog=PIPELINE_EXAMPLES)(user_errors(pipeline_command))
