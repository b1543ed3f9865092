"""``cli gan-train --seeds N``: the GAN under N seeds, scored, summarised as mean +- std
(:mod:`study.gan_seeds`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import typer

from commands.configs import config_from
from core.errors import UserError
from core.progress import console


def run_gan_seeds(
    ctx: typer.Context, seeds: int, score_per_class: int, synthetic_dir: str, cas_model: str | None
) -> None:
    """Build the seed study from the command's options, run it and print its table."""
    from augment.gan.config import GAN_PRESETS, GanConfig, SynthConfig
    from classify.training.config import TrainConfig
    from classify.training.presets import CLASSIFIER_PRESETS
    from commands.common import exit_on_interrupt
    from study.gan_seeds import SeedStudy, run_seed_study

    p = ctx.params
    if p["nproc"] > 1:
        raise UserError(f"--seeds {seeds} runs in one process; drop --nproc {p['nproc']}")
    gan = config_from(GanConfig, ctx, presets=GAN_PRESETS, preset=p["preset"])
    synth = SynthConfig(
        gan=gan.name,
        per_class=score_per_class,
        runs_dir=gan.runs_dir,
        device=gan.device,
        feature_extractor=gan.feature_extractor,
    )
    cas = None
    if cas_model is not None:
        preset = p["preset"] if p["preset"] in CLASSIFIER_PRESETS.names else None
        base = CLASSIFIER_PRESETS.apply(TrainConfig(), preset, {})
        cas = replace(base, model=cas_model, data=gan.data, runs_dir=gan.runs_dir,
                      device=gan.device, workers=gan.workers).validate()  # fmt: skip
    study = SeedStudy(gan=gan, seeds=seeds, synth=synth, synthetic_dir=synthetic_dir, cas=cas)
    say = (lambda line: console.print(line, highlight=False)) if p["progress"] else (lambda _: None)
    hint = "run the same command again to continue (finished seeds are kept)"
    summary = exit_on_interrupt(
        lambda: run_seed_study(study, overwrite=p["overwrite"], progress=p["progress"], say=say),
        hint=hint,
    )
    print_summary(summary, study.summary_dir())


def print_summary(summary: dict[str, Any], folder: Path) -> None:
    from rich.table import Table

    from study.gan_seeds import fmt, percent, summary_rows

    header, rows = summary_rows(summary)
    n = len(summary["seeds"])
    table = Table(title=f"GAN over {n} seeds (mean ± std; synthetic vs real train)")
    for i, column in enumerate(header):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    line = f"training {fmt(summary['train_seconds'], 0)} s per GAN"
    if summary["cas"]["n"]:
        line += f"; CAS {fmt(percent(summary['cas']))} %"
    console.print(f"{line}; written to {folder}/summary.md and summary.json", highlight=False)
