"""``cli pipeline``: the whole study in one command.

data -> train the model variants (same seed and budget) -> pick the best by validation accuracy ->
gan-train -> synthesize -> retrain the best architecture on real + synthetic with the same
architecture, seed, hyper-parameters and number of optimizer steps -> compare -> CAS.

Every step looks at its outputs first and is skipped when they exist and are complete; a step that
was interrupted is resumed (training runs continue from last.pt), so running the same command again
after Ctrl-C picks up where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from classify.training.config import TrainConfig
from core.errors import UserError
from core.io import read_json, read_jsonl, write_json
from study.pipeline.config import PipelineConfig

STATE_FILE = "pipeline.json"


@dataclass
class StepLog:
    """What each step did (ran / skipped) and how long it took; written to runs/<prefix>pipeline.json."""

    path: Path
    steps: list[dict[str, Any]] = field(default_factory=list)

    def run(self, name: str, done: Callable[[], bool], action: Callable[[], Any]) -> Any:
        if done():
            self.steps.append({"step": name, "status": "skipped (complete)", "seconds": 0.0})
            self._save()
            return None
        start = time.perf_counter()
        result = action()
        self.steps.append(
            {"step": name, "status": "ran", "seconds": round(time.perf_counter() - start, 1)}
        )
        self._save()
        return result

    def _save(self) -> None:
        write_json(self.path, {"steps": self.steps})


def dataset_path(cfg: PipelineConfig) -> Path:
    if cfg.data:
        return Path(cfg.data)
    suffix = "" if cfg.train_per_class == 240 else f"-{cfg.train_per_class}"
    return Path(cfg.data_dir) / f"footwear{suffix}"


def classifier_base(cfg: PipelineConfig, data: Path, seed: int) -> TrainConfig:
    from classify.training.presets import apply_preset

    explicit = {**cfg.classifier, "data": str(data), "runs_dir": cfg.runs_dir, "seed": seed}
    explicit.setdefault("device", cfg.device)
    return apply_preset(TrainConfig(), cfg.preset, explicit)


def run_pipeline(cfg: PipelineConfig) -> dict[str, Any]:
    """Run (or finish) the study; return the summary also written to ``<prefix>study.json``
    (``<prefix>study-r<ratio>.json`` with a synthetic ratio)."""
    from augment.gan.config import SynthConfig, preset_config
    from classify.training.train_all import (
        TrainAllOptions,
        evaluation_current,
        train_all,
        training_complete,
    )
    from core.footwear import FootwearConfig, write_footwear
    from study.cas import cas_config, run_cas

    if cfg.seeds < 1:
        raise UserError(f"--seeds {cfg.seeds}: need at least 1")
    data = dataset_path(cfg)
    prefix = f"{data.name}-"
    runs = Path(cfg.runs_dir)
    runs.mkdir(parents=True, exist_ok=True)
    log = StepLog(runs / f"{prefix}{STATE_FILE}")

    # 1. data
    if cfg.data is None:
        fw = FootwearConfig(out=str(data), train_per_class=cfg.train_per_class, seed=0)
        log.run("data", lambda: False, lambda: write_footwear(fw))  # keeps a complete set as is
    elif not data.is_dir():
        raise UserError(f"--data {data}: folder not found")

    # 2. baseline classifiers, one train-all per seed
    summaries = []
    for seed in range(cfg.seeds):
        base = classifier_base(cfg, data, seed)
        options = TrainAllOptions(
            cfg.models, f"{prefix}s{seed}-", cam_per_class=cfg.cam_per_class, resume=True
        )
        models_json = runs / f"{options.prefix}models.json"

        def done(
            base: TrainConfig = base,
            options: TrainAllOptions = options,
            models_json: Path = models_json,
        ) -> bool:
            return models_json.is_file() and all(
                training_complete(runs / f"{options.prefix}{m}", base.epochs)
                and evaluation_current(runs / f"{options.prefix}{m}")
                for m in options.models
            )

        log.run(f"classifiers seed {seed}", done, lambda b=base, o=options: train_all(b, o))
        summaries.append(read_json(models_json))

    # 3. the best architecture by mean validation accuracy over seeds (ties: fewer parameters)
    best_model = pick_architecture(summaries)

    # 4. GAN
    gan_cfg = preset_config(
        cfg.preset,
        **{**cfg.gan, "data": str(data), "name": f"{prefix}gan", "runs_dir": cfg.runs_dir},
        device=cfg.gan.get("device", cfg.device),
        feature_extractor=cfg.feature_extractor,
    )
    gan_dir = runs / gan_cfg.name
    log.run(
        "gan-train", lambda: gan_complete(gan_dir, gan_cfg.iterations), lambda: _train_gan(gan_cfg)
    )

    # 5. synthesize
    synthetic = Path(cfg.synthetic_dir) / gan_cfg.name
    synth_cfg = SynthConfig(
        gan=gan_cfg.name,
        per_class=cfg.per_class,
        out=str(synthetic),
        runs_dir=cfg.runs_dir,
        device=cfg.device,
        feature_extractor=cfg.feature_extractor,
    )
    log.run(
        "synthesize",
        lambda: synthetic_complete(synthetic, cfg.per_class),
        lambda: _synthesize(synth_cfg),
    )

    # 6. augmented retraining: same architecture, seed, hyper-parameters and optimizer steps
    pairs = []
    for seed in range(cfg.seeds):
        baseline = runs / f"{prefix}s{seed}-{best_model}"
        aug = augmented_config(
            baseline,
            f"{prefix}s{seed}-{best_model}{cfg.augmented_suffix}",
            str(synthetic),
            cfg.synthetic_ratio,
        )
        log.run(
            f"augmented seed {seed}",
            lambda a=aug: (
                training_complete(runs / a.name, a.epochs) and evaluation_current(runs / a.name)
            ),
            lambda a=aug: _train_and_evaluate(a),
        )
        pairs.append((baseline.name, aug.name))

    # 7. CAS: the best architecture trained on the synthetic images only
    cas_result = None
    if cfg.cas:
        cas_cfg = cas_config(
            read_train_config(runs / pairs[0][0]), synthetic, f"{prefix}cas-{best_model}"
        )
        log.run(
            "cas",
            lambda: (
                "cas" in read_json(synthetic / "manifest.json")
                and training_complete(runs / cas_cfg.name, cas_cfg.epochs)
            ),
            lambda: run_cas(cas_cfg, baseline_run=runs / pairs[0][0], resume=True),
        )
        cas_result = read_json(synthetic / "manifest.json").get("cas")

    # 8. compare (always re-rendered: cheap next to training, and it must show the CAS result)
    report_dir = Path(cfg.reports_dir) / (
        f"{prefix}{best_model}-baseline-vs-augmented"
        + ("" if cfg.synthetic_ratio is None else f"-r{cfg.synthetic_ratio:g}")
    )
    report = log.run(
        "compare",
        lambda: False,
        lambda: _compare([a for a, _ in pairs], [b for _, b in pairs], report_dir, cfg),
    )
    fid = read_json(synthetic / "manifest.json").get("fid") or {}
    study = {
        "data": str(data),
        "preset": cfg.preset,
        "seeds": cfg.seeds,
        "best_model": best_model,
        "baseline_runs": [a for a, _ in pairs],
        "augmented_runs": [b for _, b in pairs],
        "gan_run": gan_cfg.name,
        "synthetic": str(synthetic),
        "report": str(report_dir / "report.html"),
        "classifiers": summaries,
        "cas": cas_result,
        "fid": {
            "per_class": {c: r["fid"] for c, r in (fid.get("per_class") or {}).items()},
            "real_vs_real": {c: r["fid"] for c, r in (fid.get("real_vs_real") or {}).items()},
            "untrained_generator": {
                c: r["fid"] for c, r in (fid.get("untrained_generator") or {}).items()
            },
            "overall": (fid.get("overall") or {}).get("fid"),
        },
        "comparison": report,
        "steps": log.steps,
    }
    ratio = "" if cfg.synthetic_ratio is None else f"-r{cfg.synthetic_ratio:g}"
    write_json(runs / f"{prefix}study{ratio}.json", study)
    return study


def pick_architecture(summaries: list[dict[str, Any]]) -> str:
    """Mean best-epoch validation accuracy over seeds; ties to fewer parameters."""
    scores: dict[str, list[float]] = {}
    params: dict[str, int] = {}
    for summary in summaries:
        for row in summary["runs"]:
            scores.setdefault(row["model"], []).append(row["val_acc"] or 0.0)
            params[row["model"]] = row["params"]
    return min(scores, key=lambda m: (-sum(scores[m]) / len(scores[m]), params[m]))


def read_train_config(run_dir: Path) -> TrainConfig:
    return TrainConfig.from_dict(read_json(run_dir / "config.json")["train"])


def augmented_config(
    baseline: Path, name: str, synthetic: str, ratio: float | None = None
) -> TrainConfig:
    """The baseline's config with the synthetic images added (all, or ``ratio`` per real image)
    and the same optimizer-step budget: each epoch draws as many images (from real + synthetic)
    as the baseline's epoch had, so the two runs take equally many steps under the same schedule."""
    base = read_train_config(baseline)
    n_real = read_json(baseline / "config.json")["dataset"]["n_train"]
    return replace(base, name=name, synthetic=synthetic, synthetic_ratio=ratio, epoch_size=n_real)


def gan_complete(run_dir: Path, iterations: int) -> bool:
    if not (run_dir / "last.pt").is_file():
        return False
    history = read_jsonl(run_dir / "history.jsonl")
    return (
        any(r.get("iteration", 0) >= iterations for r in history)
        and (run_dir / "best.pt").is_file()
    )


def synthetic_complete(folder: Path, per_class: int) -> bool:
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return False  # synthesize writes into a temporary folder and renames it at the end
    counts = read_json(manifest).get("counts", {})
    return bool(counts) and min(counts.values()) >= per_class


def _train_gan(cfg: Any) -> Any:
    from augment.gan.trainer import train_gan

    run_dir = Path(cfg.runs_dir) / cfg.name
    return train_gan(cfg, resume=(run_dir / "last.pt").is_file())


def _synthesize(cfg: Any) -> Any:
    from augment.synthesize import synthesize

    return synthesize(replace(cfg, overwrite=Path(cfg.out).exists()))


def _train_and_evaluate(cfg: TrainConfig) -> None:
    from classify.evaluation.evaluate import evaluate_run
    from classify.training.trainer import train

    run_dir = Path(cfg.runs_dir) / cfg.name
    from classify.training.train_all import training_complete

    if not training_complete(run_dir, cfg.epochs):
        train(cfg, resume=(run_dir / "last.pt").is_file())
    evaluate_run(run_dir, "best", device=cfg.device)


def _compare(a: list[str], b: list[str], out: Path, cfg: PipelineConfig) -> dict[str, Any]:
    from study.compare.config import CompareConfig
    from study.compare.job import run_compare

    report, _ = run_compare(
        CompareConfig(
            a=tuple(a),
            b=tuple(b),
            out=str(out),
            runs_dir=cfg.runs_dir,
            device=cfg.device,
            per_class=cfg.cam_per_class,
        )
    )
    return report
