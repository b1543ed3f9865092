"""The runs of a comparison: run lists, loading an evaluated run, and pairing runs by test file.

Two *sides*, A (typically the baseline) and B (the same architecture retrained on real + synthetic
images), each one run or several seeds of one setup. Every run's ``eval/predictions.csv`` is paired
with the others' by file path, so each test image is its own control; the statistics on those
pairs are :mod:`study.compare.numbers`. Runs whose evaluation is missing or stale are evaluated on
demand (``ensure_evaluated``). The loader (``load_run``) only reads files; the synthetic set a run
trained on is :mod:`study.compare.synthetic`'s.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from classify.evaluation.evaluate import Predictions, read_predictions
from core.errors import UserError
from core.evaldir import EVAL_DIR, METRICS_FILE, PREDICTIONS_CSV, eval_staleness
from core.io import read_json, read_jsonl
from core.rundir import read_run_config

# --- run lists and output folder ---------------------------------------------------------------


def parse_run_list(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"base_s0,base_s1"`` (or several such strings) -> ``("base_s0", "base_s1")``."""
    items = [text] if isinstance(text, str) else list(text)
    runs = tuple(part.strip() for item in items for part in item.split(",") if part.strip())
    if not runs:
        raise UserError(
            "no run given; pass run names or folders, e.g. `cli compare base aug` or "
            "`cli compare base_s0,base_s1 aug_s0,aug_s1`"
        )
    return runs


def side_label(names: Sequence[str]) -> str:
    """A folder-safe label for a side: its first run, plus ``+N`` for further seeds."""
    first = Path(names[0]).name or "run"
    return first if len(names) == 1 else f"{first}+{len(names) - 1}"


def default_out(a: Sequence[str], b: Sequence[str]) -> Path:
    return Path("reports") / f"{side_label(a)}-vs-{side_label(b)}"


# --- evaluation outputs of one run -------------------------------------------------------------


@dataclass
class RunResult:
    """What the comparison reads from one evaluated run folder."""

    name: str
    run_dir: Path
    metrics: dict[str, Any]  # eval/metrics.json
    predictions: Predictions
    config: dict[str, Any]  # config.json ({} if missing)
    history: list[dict[str, Any]]

    @property
    def class_names(self) -> list[str]:
        return list(self.predictions.class_names)

    @property
    def dataset_root(self) -> Path | None:
        root = self.metrics.get("dataset")
        return Path(root) if root else None

    @property
    def model_name(self) -> str:
        return str(self.config.get("model", {}).get("name") or self.metrics.get("model") or "?")

    @property
    def synthetic(self) -> dict[str, Any] | None:
        entry = self.config.get("synthetic")
        return entry if isinstance(entry, dict) and entry else None

    @property
    def seed(self) -> int | None:
        """The training seed (config.json's ``train.seed``); None when the run records none."""
        seed = (self.config.get("train") or {}).get("seed")
        return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def load_run(run_dir: Path) -> RunResult:
    """Read an evaluated run's metrics, predictions, config and history."""
    run_dir = Path(run_dir)
    metrics = read_json(run_dir / EVAL_DIR / METRICS_FILE)
    predictions = read_predictions(run_dir / EVAL_DIR / PREDICTIONS_CSV)
    if not predictions.files:
        raise UserError(
            f"{run_dir / EVAL_DIR / PREDICTIONS_CSV}: no test predictions; re-run "
            f"`cli evaluate {run_dir}`"
        )
    return RunResult(
        name=run_dir.name,
        run_dir=run_dir,
        metrics=metrics,
        predictions=predictions,
        config=read_run_config(run_dir),
        history=read_jsonl(run_dir / "history.jsonl"),
    )


# --- pairing ------------------------------------------------------------------------------------


def check_pairable(a: RunResult, b: RunResult) -> None:
    """UserError unless both runs predicted the same test files, with the same classes and labels."""
    where = f"{a.run_dir / EVAL_DIR / PREDICTIONS_CSV} vs {b.run_dir / EVAL_DIR / PREDICTIONS_CSV}"
    if a.class_names != b.class_names:
        raise UserError(
            f"{where}: class names differ ({a.class_names} vs {b.class_names}); "
            "compare runs trained on the same classes"
        )
    files_a, files_b = set(a.predictions.files), set(b.predictions.files)
    if files_a != files_b or len(a.predictions.files) != len(b.predictions.files):
        only_a, only_b = sorted(files_a - files_b), sorted(files_b - files_a)
        example = (only_a or only_b or ["duplicate file rows"])[0]
        raise UserError(
            f"{where}: the runs were tested on different test sets ({len(only_a)} test file(s) "
            f"only in {a.name}, {len(only_b)} only in {b.name}, e.g. {example}); "
            "evaluate both on the same dataset (`cli evaluate RUN --data DIR`)"
        )
    b_labels = dict(zip(b.predictions.files, b.predictions.true.tolist(), strict=True))
    for file, label in zip(a.predictions.files, a.predictions.true.tolist(), strict=True):
        if b_labels[file] != label:
            raise UserError(
                f"{where}: {file} has true class {a.class_names[label]} in one run and "
                f"{b.class_names[b_labels[file]]} in the other; re-evaluate both runs"
            )


def _by_seed(runs: Sequence[RunResult], side: str) -> dict[int, RunResult]:
    found: dict[int, RunResult] = {}
    for run in runs:
        if run.seed is None:
            raise UserError(
                f"{side}: run {run.name} records no training seed (config.json train.seed); runs "
                "are paired by seed, so every run of a list needs one"
            )
        if run.seed in found:
            raise UserError(
                f"{side}: runs {found[run.seed].name} and {run.name} have the same training seed "
                f"{run.seed}; each seed may appear once per side"
            )
        found[run.seed] = run
    return found


def pair_by_seed(
    side_a: Sequence[RunResult], side_b: Sequence[RunResult], labels: tuple[str, str] = ("A", "B")
) -> list[tuple[RunResult, RunResult]]:
    """``(a, b)`` pairs of the same training seed, in seed order; a one-line UserError naming the
    runs for a seed that is missing from one side, repeated, or not recorded. Two single runs are
    paired whatever their seeds (a comparison of two trained models, not of seeds)."""
    if len(side_a) == len(side_b) == 1:
        return [(side_a[0], side_b[0])]
    a, b = _by_seed(side_a, labels[0]), _by_seed(side_b, labels[1])
    for (one, mine), (other, theirs) in (((labels[0], a), (labels[1], b)),
                                         ((labels[1], b), (labels[0], a))):  # fmt: skip
        lonely = [mine[s] for s in sorted(set(mine) - set(theirs))]
        if lonely:
            have = ", ".join(f"{r.name} (seed {s})" for s, r in sorted(theirs.items())) or "none"
            raise UserError(
                f"runs pair by training seed: {one} has "
                + ", ".join(f"{r.name} (seed {r.seed})" for r in lonely)
                + f" but {other} has no run of that seed (its runs: {have})"
            )
    seeds = sorted(a)
    return list(zip([a[s] for s in seeds], [b[s] for s in seeds], strict=True))


def align(reference: Predictions, other: Predictions) -> Predictions:
    """``other``'s rows reordered to ``reference``'s file order (both checked by check_pairable)."""
    index = other.by_file()
    order = np.array([index[f] for f in reference.files], dtype=np.int64)
    return Predictions(
        files=list(reference.files),
        true=other.true[order],
        predicted=other.predicted[order],
        probabilities=other.probabilities[order],
        class_names=list(other.class_names),
    )


def correct(predictions: Predictions) -> np.ndarray:
    return predictions.true == predictions.predicted


# --- evaluation on demand -----------------------------------------------------------------------


Evaluator = Callable[[Path, str], Any]


def ensure_evaluated(
    run_dir: Path, which: str, evaluate: Evaluator, checkpoint_file: Path
) -> str | None:
    """Evaluate ``run_dir`` when its eval/ is missing or stale; returns the reason it was redone."""
    reason = eval_staleness(run_dir, which, checkpoint_file)
    if reason is not None:
        evaluate(run_dir, which)
        again = eval_staleness(run_dir, which, checkpoint_file)
        if again is not None:  # e.g. a clock skew making the checkpoint look newer
            warnings.warn(f"{run_dir}: {again} even after evaluating it", stacklevel=2)
    return reason
