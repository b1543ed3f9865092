"""``cli synthesize``: a synthetic set from a trained GAN (options mirror SynthConfig), and the tables
it prints from the set's manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from augment.gan.config import SynthConfig
from commands.common import one_process, user_errors
from commands.configs import config_of
from commands.gan import prefer_passive_openmp
from commands.options import (
    Device,
    GanCheckpoint,
    Overwrite,
    Progress,
    RunsDir,
    ScorePerClass,
    SyntheticPerClass,
)
from core.manifest import FidScores, Manifest, Score
from core.progress import console

_S = SynthConfig(gan="")


def synthesize_command(
    ctx: typer.Context,
    gan: Annotated[
        str,
        typer.Option("--gan", metavar="<run>", help="GAN run name (under --runs-dir) or folder."),
    ],
    per_class: SyntheticPerClass = _S.per_class,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: synthetic/<gan>).")
    ] = None,
    checkpoint: GanCheckpoint = _S.checkpoint,
    seed: Annotated[
        int, typer.Option(help="Noise seed: the same seed gives identical images.")
    ] = _S.seed,
    batch_size: Annotated[int, typer.Option(help="Images per generator call.")] = _S.batch_size,
    filter_with: Annotated[
        str | None,
        typer.Option(
            metavar="<run>",
            help="Classifier run: keep only samples it assigns to their class (see below).",
        ),
    ] = _S.filter_with,
    min_confidence: Annotated[
        float, typer.Option(help="With --filter-with: minimum probability of the intended class.")
    ] = _S.min_confidence,
    max_draw_factor: Annotated[
        int, typer.Option(help="With --filter-with: stop a class after this many x its count.")
    ] = _S.max_draw_factor,
    oversample: Annotated[
        int | None,
        typer.Option(
            help="With --filter-with: draw this many times --per-class images of each class and "
            "keep the --per-class the classifier is most confident of (ranking instead of "
            "--min-confidence).",
        ),
    ] = _S.oversample,
    truncation: Annotated[
        float | None,
        typer.Option(
            help="Truncation trick (Brock et al. 2019): redraw noise components with |z| above "
            "this (default: plain noise)."
        ),
    ] = _S.truncation,
    fid: Annotated[
        bool,
        typer.Option("--fid/--no-fid", help="Score FID/KID and precision/recall/density/coverage."),
    ] = _S.fid,
    standing_stats: Annotated[
        int | None,
        typer.Option(
            help="Sample the EMA generator with BatchNorm statistics re-estimated over N batches "
            "(0: the statistics copied from G); default: the GAN run's own --standing-stats.",
        ),
    ] = _S.standing_stats,
    score_per_class: ScorePerClass = _S.score_per_class,
    untrained_reference: Annotated[
        bool,
        typer.Option(
            "--untrained-reference/--no-untrained-reference",
            help="Also score an untrained generator at the same sample sizes (FID's chance level).",
        ),
    ] = _S.untrained_reference,
    precision_recall_k: Annotated[
        int, typer.Option(help="k-NN balls of precision/recall (Kynkaanniemi et al. 2019).")
    ] = _S.precision_recall_k,
    density_coverage_k: Annotated[
        int, typer.Option(help="k-NN balls of density/coverage (Naeem et al. 2020).")
    ] = _S.density_coverage_k,
    overwrite: Overwrite = _S.overwrite,
    runs_dir: RunsDir = Path(_S.runs_dir),
    device: Device = _S.device,
    progress: Progress = True,
) -> None:
    """Write a synthetic set from a trained GAN, scored against the real images.

    --per-class images of each class go into OUT/<class>/, with manifest.json: the source
    checkpoint and its hash, seed, truncation, counts, and per-class FID/KID and precision /
    recall / density / coverage against the real training images, next to the real-vs-real floor
    and an untrained generator.

    With --filter-with, a class that cannot reach its count within --max-draw-factor x draws keeps
    what it has, with a warning (recorded in the manifest).
    """
    prefer_passive_openmp()
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
        _print_diversity(manifest, fid)
    console.print(f"wrote {manifest.out} ({sum(counts.values())} images)",
                  highlight=False, soft_wrap=True)  # fmt: skip


def _print_diversity(manifest: Manifest, fid: FidScores) -> None:
    """Precision / recall / density / coverage per class (when the manifest has them)."""
    from rich.table import Table

    def four(score: Score | None) -> str:
        values = (None,) if score is None else (score.precision, score.recall, score.density,
                                                 score.coverage)  # fmt: skip
        return "-" if None in values else "/".join(f"{v:.2f}" for v in values)

    rows = [
        (
            name,
            (fid.per_class or {}).get(name),
            (fid.real_vs_real or {}).get(name),
            (fid.untrained_generator or {}).get(name),
        )
        for name in manifest.class_names or []
    ]
    rows.append(("all", fid.overall, fid.real_vs_real_overall, fid.untrained_generator_overall))
    if all(four(s) == "-" for _, s, _, _ in rows):
        return
    k = f"k {fid.precision_recall_k} / {fid.density_coverage_k}"
    table = Table(title=f"precision/recall/density/coverage vs real train ({k})")
    for column in ("class", "synthetic", "real-vs-real", "untrained G"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, synthetic, floor, chance in rows:
        table.add_row(name, four(synthetic), four(floor), four(chance))
    console.print(table)
    console.print("1 is what a set scores against itself; low recall or coverage means modes the "
                  "generator misses, low precision or density images off the real ones",
                  style="dim")  # fmt: skip


EXAMPLES = """Examples:

cli synthesize --gan gan --per-class 500
cli synthesize --gan gan --filter-with cbam --oversample 4 --out synthetic/gan-filtered
"""


def register(app: typer.Typer) -> None:
    app.command("synthesize", epilog=EXAMPLES)(
        user_errors(one_process("synthesize")(synthesize_command))
    )
