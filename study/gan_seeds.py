"""GAN seed variance: train the same GAN under N seeds, score each one's synthetic set as
``cli synthesize`` does, and report every metric as mean +- std over the seeds.

One GAN run's FID moves by up to 50% between machines for the same seed (floating-point rounding
compounds over thousands of adversarial steps), so a single FID says little about a recipe; the
field reports GAN metrics over several training seeds (e.g. Kang et al. 2023, "StudioGAN: A
Taxonomy and Benchmark of GANs for Image Synthesis", over 3 seeds). Per seed ``s`` this trains
``runs/NAME-sS`` (the GAN config with ``seed=s``), writes ``synthetic/NAME-sS`` with its manifest
(FID/KID, precision/recall, density/coverage per class and overall, next to the real-vs-real floor
and the untrained generator; :mod:`augment.synthesis_scores`) and, when a classifier config is
given, trains the CAS classifier on it (:mod:`study.cas`). The summary goes to
``runs/NAME-seeds/summary.json`` and ``summary.md``.

Every step is skipped when its output is complete and resumed when it was interrupted, so the
same command after Ctrl-C continues where it stopped. The synthesis seed and the CAS classifier's
seed stay fixed across GAN seeds: only the generator varies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from augment.gan.config import GanConfig, SynthConfig
from classify.training.config import TrainConfig
from core.errors import UserError
from core.io import atomic_write_text, read_jsonl, write_json
from core.manifest import MANIFEST, Manifest, Score
from study.stats import mean_std

METRICS = ("fid", "fid_floor_ratio", "kid_mean", "precision", "recall", "density", "coverage")
LABELS = {
    "fid": "FID",
    "fid_floor_ratio": "FID / floor",
    "kid_mean": "KID",
    "precision": "precision",
    "recall": "recall",
    "density": "density",
    "coverage": "coverage",
}
OVERALL = "overall"


@dataclass(frozen=True)
class SeedStudy:
    """What ``cli gan-train --seeds N`` runs: ``gan`` under seeds ``gan.seed .. gan.seed+N-1``."""

    gan: GanConfig
    seeds: int
    synth: SynthConfig  # ``gan`` and ``out`` are set per seed
    synthetic_dir: str = "synthetic"
    cas: TrainConfig | None = None  # None: no CAS

    def validate(self) -> SeedStudy:
        if self.seeds < 1:
            raise UserError(f"--seeds {self.seeds}: must be >= 1")
        self.gan.validate()
        self.synth.validate()
        return self

    def seed_values(self) -> list[int]:
        return [self.gan.seed + i for i in range(self.seeds)]

    def run_name(self, seed: int) -> str:
        return f"{self.gan.name}-s{seed}"

    def summary_dir(self) -> Path:
        return Path(self.gan.runs_dir) / f"{self.gan.name}-seeds"


def run_seed_study(
    study: SeedStudy,
    *,
    overwrite: bool = False,
    progress: bool = True,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Train, synthesize and score (and CAS) every seed, then summarise (module docstring)."""
    from augment.gan.trainer import train_gan
    from augment.synthesize import synthesize
    from study.pipeline.plan import gan_complete, synthetic_complete

    study = study.validate()
    per_seed: list[dict[str, Any]] = []
    for seed in study.seed_values():
        name = study.run_name(seed)
        cfg = replace(study.gan, name=name, seed=seed)
        run_dir = Path(cfg.runs_dir) / name
        if gan_complete(run_dir, cfg.iterations):
            say(f"seed {seed}: {run_dir} complete, kept")
        else:
            partial = (run_dir / "last.pt").is_file() and not overwrite
            say(f"seed {seed}: training {run_dir}" + (" (resumed)" if partial else ""))
            train_gan(cfg, resume=partial, overwrite=overwrite, progress=progress)
        out = Path(study.synthetic_dir) / name
        synth = replace(study.synth, gan=name, out=str(out), runs_dir=cfg.runs_dir)
        checkpoint = run_dir / f"{synth.checkpoint}.pt"
        if synthetic_complete(out, synth.per_class, checkpoint) and not overwrite:
            say(f"seed {seed}: {out} complete, kept")
        else:
            say(f"seed {seed}: synthesizing and scoring {out}")
            synthesize(replace(synth, overwrite=True), progress=progress)
        manifest = Manifest.read(out / MANIFEST)
        cas = _cas(study, name, out, overwrite) if study.cas is not None else None
        per_seed.append(seed_record(seed, run_dir, manifest, cas))
    summary = summarize(per_seed, study)
    folder = study.summary_dir()
    write_json(folder / "summary.json", summary)
    atomic_write_text(folder / "summary.md", summary_markdown(summary))
    return summary


def _cas(study: SeedStudy, name: str, synthetic: Path, overwrite: bool) -> float:
    from study.cas import cas_config, run_cas

    assert study.cas is not None
    cfg = cas_config(study.cas, synthetic, f"{name}-cas")
    return float(run_cas(cfg, resume=not overwrite, overwrite=overwrite)["test_acc"])


def seed_record(
    seed: int, run_dir: Path, manifest: Manifest, cas: float | None = None
) -> dict[str, Any]:
    """One seed's metrics: per class and overall, with the floor and the untrained generator."""
    fid = manifest.fid
    if fid is None or fid.computed is False or fid.per_class is None or fid.overall is None:
        raise UserError(f"{manifest.out}: its manifest has no FID scores; synthesize with FID on")
    classes: dict[str, dict[str, float | None]] = {}
    for name, score in fid.per_class.items():
        floor = (fid.real_vs_real or {}).get(name)
        untrained = (fid.untrained_generator or {}).get(name)
        classes[name] = _metrics(score, floor, untrained)
    classes[OVERALL] = _metrics(
        fid.overall, fid.real_vs_real_overall, fid.untrained_generator_overall
    )
    return {
        "seed": seed,
        "gan_run": run_dir.name,
        "synthetic": manifest.out,
        "iterations": manifest.gan_iteration,
        "train_seconds": train_seconds(run_dir),
        "metrics": classes,
        "cas": cas,
    }


def _metrics(score: Score, floor: Score | None, untrained: Score | None) -> dict[str, float | None]:
    out: dict[str, float | None] = {m: getattr(score, m) for m in METRICS if m != "fid_floor_ratio"}
    floor_fid = floor.fid if floor is not None else None
    out["fid_floor_ratio"] = score.fid / floor_fid if score.fid is not None and floor_fid else None
    out["floor_fid"] = floor_fid
    out["untrained_fid"] = untrained.fid if untrained is not None else None
    return out


def train_seconds(run_dir: Path) -> float | None:
    """Seconds spent in training steps (the history's train lines; evaluations not counted)."""
    path = run_dir / "history.jsonl"
    if not path.is_file():
        return None
    lines = [r for r in read_jsonl(path) if r.get("kind") == "train"]
    return float(sum(r.get("seconds", 0.0) for r in lines)) if lines else None


def seed_stat(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """Mean and sample std (:func:`study.stats.mean_std`: std None for one value, so one seed
    prints its value alone), min, max and n of the values given (None values skipped)."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    mean, std = mean_std(xs)
    return {"mean": mean, "std": std, "min": min(xs), "max": max(xs), "n": len(xs)}


def summarize(per_seed: list[dict[str, Any]], study: SeedStudy | None = None) -> dict[str, Any]:
    """Mean +- std over seeds of every metric of every class (and overall), time and CAS."""
    if not per_seed:
        raise UserError("no seed to summarise")
    groups = list(per_seed[0]["metrics"])
    keys = [*METRICS, "floor_fid", "untrained_fid"]
    table = {
        group: {key: seed_stat([r["metrics"][group].get(key) for r in per_seed]) for key in keys}
        for group in groups
    }
    out: dict[str, Any] = {
        "seeds": [r["seed"] for r in per_seed],
        "metrics": table,
        "train_seconds": seed_stat([r["train_seconds"] for r in per_seed]),
        "cas": seed_stat([r["cas"] for r in per_seed]),
        "per_seed": per_seed,
        "note": "std is the sample standard deviation over GAN seeds (n - 1); FID / floor is "
        "each seed's FID over the real-vs-real FID at the same sample size (1 = as close as "
        "real test images are); the synthesis and CAS seeds are fixed, only the GAN's varies",
    }
    if study is not None:
        out["gan_config"] = study.gan.to_dict()
        out["per_class"] = study.synth.per_class
        out["cas_config"] = study.cas.to_dict() if study.cas is not None else None
    return out


def fmt(stat: dict[str, Any], digits: int = 1) -> str:
    """``mean ± std`` (or the single value, or "-")."""
    if stat["mean"] is None:
        return "-"
    if stat["std"] is None:
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


DIGITS = {"fid": 1, "fid_floor_ratio": 2, "kid_mean": 3, "floor_fid": 1, "untrained_fid": 1}


def summary_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The summary as a table: one row per class (and overall), one column per metric."""
    header = ["class", "floor FID", *(LABELS[m] for m in METRICS), "untrained FID"]
    rows = []
    for group, stats in summary["metrics"].items():
        cells = [fmt(stats[k], DIGITS.get(k, 3)) for k in ("floor_fid", *METRICS, "untrained_fid")]
        rows.append([group, *cells])
    return header, rows


def summary_markdown(summary: dict[str, Any]) -> str:
    header, rows = summary_rows(summary)
    n = len(summary["seeds"])
    lines = [
        f"# GAN over {n} seed(s): {', '.join(map(str, summary['seeds']))}",
        "",
        "Mean ± std over GAN seeds (std: n - 1).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
        f"Training time: {fmt(summary['train_seconds'], 0)} s per GAN (training steps only).",
    ]
    if summary["cas"]["n"]:
        lines.append(f"CAS (train on synthetic, test on real): {fmt(percent(summary['cas']))} %.")
    return "\n".join(lines) + "\n"


def percent(stat: dict[str, Any]) -> dict[str, Any]:
    """A :func:`seed_stat` of fractions as percentages (counts kept)."""
    return {k: (v * 100 if isinstance(v, float) else v) for k, v in stat.items()}
