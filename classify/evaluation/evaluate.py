"""Test-set evaluation of a trained classifier run -> ``runs/NAME/eval/``.

Writes ``metrics.json`` (accuracy, macro-F1, per-class precision/recall/F1/support, mean
cross-entropy, which checkpoint), ``confusion.json`` + ``confusion.png``, ``curves.png`` (from
``history.jsonl``) and ``predictions.csv`` (one row per test file, keyed by its path relative to the
dataset root, so two runs evaluated on the same test set pair up row by row for McNemar's test).

``metrics.json`` is shared with ``cli gradcam``: every writer goes through
:func:`core.rundir.update_metrics`, which merges its keys into the existing file instead of
replacing it.

Under torchrun with several processes (``torchrun --nproc-per-node N cli.py evaluate NAME``) the
prediction batches are dealt to the ranks and the probabilities gathered in order
(:func:`core.ranks.map_sharded`), so the metrics are those of one process; rank 0 writes ``eval/``.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from classify.checkpoint import DEFAULT_BATCH_SIZE, LoadedClassifier, load_classifier
from classify.evaluation.figures import plot_confusion, plot_curves
from classify.evaluation.metrics import classification_summary, confusion_matrix, mean_cross_entropy
from core.data import ImageTensors, load_samples, scan_dataset, warn_skipped
from core.distributed import is_main, launched_world_size, on_main, start
from core.errors import UserError
from core.evaldir import PREDICTIONS_CSV, eval_dir, update_metrics
from core.io import atomic_write_text, read_jsonl, write_json
from core.ranks import map_sharded
from core.rundir import read_run_config

CONFUSION_JSON = "confusion.json"
CONFUSION_PNG = "confusion.png"
CURVES_PNG = "curves.png"
PROB_PREFIX = "p_"


def dataset_root(loaded: LoadedClassifier, data: str | Path | None = None) -> Path:
    """The dataset the run was trained on (``--data`` overrides it, e.g. after moving it)."""
    if data is not None:
        return Path(data)
    recorded = read_run_config(loaded.run_dir).get("dataset", {}).get("root")
    candidates = [Path(loaded.train_config.data)] + ([Path(recorded)] if recorded else [])
    return next((c for c in candidates if c.is_dir()), candidates[0])


def load_test_set(
    loaded: LoadedClassifier,
    data: str | Path | None = None,
    workers: int = 0,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> tuple[ImageTensors, Path]:
    """Decode the run's ``test`` split at the run's image size and resize mode."""
    root = dataset_root(loaded, data)
    index = scan_dataset(root)
    check_class_names(index.class_names, loaded.class_names, root)
    if on_total:
        on_total(len(index.test))
    tensors = load_samples(
        index.test,
        index.class_names,
        loaded.train_config.image_size,
        resize_mode=loaded.train_config.resize_mode,
        workers=workers,
        progress=progress,
    )
    warn_skipped(tensors)
    return tensors, root


def check_class_names(found: Sequence[str], expected: Sequence[str], root: Path) -> None:
    if list(found) != list(expected):
        raise UserError(
            f"{root}: test classes {list(found)} differ from the run's {list(expected)}; "
            "pass --data with the dataset the run was trained on"
        )


# --- predictions.csv ------------------------------------------------------------------------


@dataclass
class Predictions:
    """Per-file test predictions; ``files`` are relative to the dataset root (POSIX)."""

    files: list[str]
    true: np.ndarray  # int64 N
    predicted: np.ndarray  # int64 N
    probabilities: np.ndarray  # float N x C
    class_names: list[str]

    def by_file(self) -> dict[str, int]:
        """File -> row index, for pairing two runs' predictions on the same test set."""
        return {f: i for i, f in enumerate(self.files)}


def relative_file(path: str | Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).as_posix()


def write_predictions(path: Path, predictions: Predictions) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["file", "true", "predicted"] + [PROB_PREFIX + name for name in predictions.class_names]
    )
    names = predictions.class_names
    for i, file in enumerate(predictions.files):
        writer.writerow(
            [file, names[predictions.true[i]], names[predictions.predicted[i]]]
            + [f"{p:.6f}" for p in predictions.probabilities[i]]
        )
    atomic_write_text(path, buffer.getvalue())


def read_predictions(path: Path) -> Predictions:
    """Inverse of :func:`write_predictions` (class names from the probability columns)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no predictions; run `cli evaluate` on that run first")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    class_names = [h[len(PROB_PREFIX) :] for h in header[3:]]
    lookup = {name: i for i, name in enumerate(class_names)}
    return Predictions(
        files=[r[0] for r in rows],
        true=np.array([lookup[r[1]] for r in rows], dtype=np.int64),
        predicted=np.array([lookup[r[2]] for r in rows], dtype=np.int64),
        probabilities=np.array([[float(x) for x in r[3:]] for r in rows], dtype=np.float64).reshape(
            len(rows), len(class_names)
        ),
        class_names=class_names,
    )


# --- the evaluation -------------------------------------------------------------------------


def evaluation_metrics(
    loaded: LoadedClassifier, predictions: Predictions, root: Path, skipped: Sequence[Any] = ()
) -> dict[str, Any]:
    """The evaluation entries of metrics.json, from predictions (pure apart from the clock)."""
    matrix = confusion_matrix(predictions.true, predictions.predicted, len(loaded.class_names))
    summary = classification_summary(matrix, loaded.class_names)
    return {
        "run": loaded.name,
        "checkpoint": loaded.which,
        "checkpoint_path": str(loaded.checkpoint_path),
        "epoch": loaded.epoch,
        "best_epoch": loaded.best_epoch,
        "val_acc": loaded.val_acc,
        "model": loaded.model_config.name,
        "dataset": str(root),
        "n_test": int(predictions.true.size),
        "class_names": list(loaded.class_names),
        "accuracy": summary["accuracy"],
        "macro_f1": summary["macro_f1"],
        "loss": mean_cross_entropy(predictions.probabilities, predictions.true),
        "per_class": summary["per_class"],
        "confusion": matrix.tolist(),
        "skipped": [list(s) for s in skipped],
        "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_eval_files(
    loaded: LoadedClassifier, predictions: Predictions, metrics: dict[str, Any]
) -> dict[str, Any]:
    """predictions.csv, confusion.json/png, curves.png, then the merged metrics.json."""
    out = eval_dir(loaded.run_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_predictions(out / PREDICTIONS_CSV, predictions)
    write_json(
        out / CONFUSION_JSON,
        {
            "class_names": loaded.class_names,
            "rows": "true class",
            "columns": "predicted class",
            "matrix": metrics["confusion"],
            "checkpoint": loaded.which,
        },
    )
    title = f"{loaded.name}: {loaded.model_config.name}, {loaded.which}.pt (epoch {loaded.epoch})"
    plot_confusion(np.array(metrics["confusion"]), loaded.class_names, out / CONFUSION_PNG, title)
    files = [PREDICTIONS_CSV, CONFUSION_JSON, CONFUSION_PNG]
    history = read_jsonl(loaded.run_dir / "history.jsonl")
    if history:
        plot_curves(
            {loaded.name: history},
            out / CURVES_PNG,
            title=f"{loaded.name}: {loaded.model_config.name}",
        )
        files.append(CURVES_PNG)
    else:
        warnings.warn(
            f"{loaded.run_dir / 'history.jsonl'}: no epochs recorded; curves.png skipped",
            stacklevel=2,
        )
    return update_metrics(loaded.run_dir, {**metrics, "files": files})


def predict_tensors(
    loaded: LoadedClassifier,
    tensors: ImageTensors,
    root: Path,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> Predictions:
    def predict(first: int) -> torch.Tensor:
        batch = tensors.images[first : first + batch_size]
        probabilities = loaded.predict_proba(batch, batch_size)
        if progress:
            progress(batch.shape[0])
        return probabilities

    chunks = map_sharded(range(0, len(tensors), batch_size), predict)  # in order, on every rank
    probs = torch.cat(chunks).double().numpy()
    return Predictions(
        files=[relative_file(p, root) for p in tensors.paths],
        true=tensors.labels.numpy().astype(np.int64),
        predicted=probs.argmax(axis=1).astype(np.int64),
        probabilities=probs,
        class_names=list(loaded.class_names),
    )


def evaluate_loaded(
    loaded: LoadedClassifier,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int = 0,
    data: str | Path | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Evaluate an already loaded classifier on its test split and write ``eval/``."""
    from core.progress import make_progress

    bar = make_progress(transient=True)
    bar.disable = not (show_progress and is_main())  # rank 0 alone shows progress
    with bar:
        task = bar.add_task("test images", total=None, info="")
        tensors, root = load_test_set(
            loaded,
            data,
            workers,
            progress=lambda n: bar.advance(task, n),
            on_total=lambda n: bar.update(task, total=n),
        )
        task = bar.add_task("predict", total=len(tensors), info=loaded.which)
        predictions = predict_tensors(
            loaded, tensors, root, batch_size, progress=lambda n: bar.advance(task, n)
        )
    return on_main(  # rank 0 writes; every rank returns what it wrote
        lambda: write_eval_files(
            loaded, predictions, evaluation_metrics(loaded, predictions, root, tensors.skipped)
        )
    )


def evaluate_run(
    run: str | Path,
    which: str = "best",
    *,
    runs_dir: str | Path = "runs",
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device | None = None,
    workers: int = 0,
    data: str | Path | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Load ``run``'s ``which`` checkpoint, evaluate it on the test split, write ``eval/`` and
    return the metrics dict (as written to ``metrics.json``)."""
    loaded = load_classifier(run, which, runs_dir, device)
    if launched_world_size() > 1:  # under torchrun: the ranks share the prediction batches
        start(loaded.device)
    return evaluate_loaded(
        loaded, batch_size=batch_size, workers=workers, data=data, show_progress=show_progress
    )
