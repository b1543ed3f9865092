"""Evaluation: metric functions on hand-computed cases, loading runs, the eval/ files and their
consistency, metrics.json merging, figures, and `cli evaluate` / `cli predict` end to end."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from classify.checkpoint import load_classifier
from classify.evaluation.evaluate import evaluate_run, read_predictions
from classify.evaluation.figures import plot_confusion, plot_curves
from classify.evaluation.metrics import (
    accuracy,
    classification_summary,
    confusion_matrix,
    macro_f1,
    mean_cross_entropy,
    precision_recall_f1,
    row_normalised,
)
from core.errors import UserError
from core.evaldir import read_metrics, update_metrics
from core.io import read_json, save_checkpoint
from core.rundir import resolve_run_dir

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLASS_NAMES = ["boot", "sandal", "sneaker"]  # tiny_run's classes (conftest's "halves" pattern)


@pytest.fixture
def cli():
    from cli import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


# --- metrics --------------------------------------------------------------------------------


def test_confusion_matrix_counts_true_rows_predicted_columns():
    matrix = confusion_matrix([0, 0, 1, 1, 2, 2, 2], [0, 1, 1, 1, 2, 0, 2], 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    assert matrix.dtype == np.int64
    with pytest.raises(ValueError):
        confusion_matrix([0, 3], [0, 0], 3)
    with pytest.raises(ValueError):
        confusion_matrix([0, 1], [0], 3)


def test_precision_recall_f1_hand_computed():
    matrix = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 2]])
    precision, recall, f1, support = precision_recall_f1(matrix)
    # column sums 2, 3, 2; row sums 2, 2, 3
    np.testing.assert_allclose(precision, [1 / 2, 2 / 3, 2 / 2])
    np.testing.assert_allclose(recall, [1 / 2, 2 / 2, 2 / 3])
    np.testing.assert_allclose(f1, [0.5, 0.8, 0.8])
    assert support.tolist() == [2, 2, 3]
    assert accuracy(matrix) == pytest.approx(5 / 7)
    assert macro_f1(matrix) == pytest.approx((0.5 + 0.8 + 0.8) / 3)


def test_zero_division_gives_zero_not_nan():
    # class 2 never predicted and class 1 absent from the test set
    matrix = np.array([[3, 0, 0], [0, 0, 0], [1, 1, 0]])
    precision, recall, f1, _ = precision_recall_f1(matrix)
    assert precision.tolist() == [0.75, 0.0, 0.0]
    assert recall.tolist() == [1.0, 0.0, 0.0]
    assert np.isfinite(f1).all()
    assert row_normalised(matrix)[1].tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_allclose(row_normalised(matrix)[2], [0.5, 0.5, 0.0])


def test_mean_cross_entropy_and_summary():
    probs = np.array([[0.5, 0.5], [0.25, 0.75], [1.0, 0.0]])
    assert mean_cross_entropy(probs, [0, 1, 0]) == pytest.approx(
        -(math.log(0.5) + math.log(0.75) + math.log(1.0)) / 3
    )
    assert math.isfinite(mean_cross_entropy(probs, [1, 1, 1]))  # p = 0 is clipped
    summary = classification_summary(np.array([[2, 0], [1, 1]]), ["a", "b"])
    assert summary["accuracy"] == pytest.approx(0.75)
    assert summary["per_class"]["b"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
    }


# --- loading --------------------------------------------------------------------------------


def test_resolve_run_dir_by_name_or_path_and_unknown(tiny_run):
    runs_dir, _ = tiny_run
    assert resolve_run_dir("tiny", runs_dir) == runs_dir / "tiny"
    assert resolve_run_dir(runs_dir / "tiny", "elsewhere") == runs_dir / "tiny"
    with pytest.raises(UserError, match="'nosuch' not found.*tiny"):
        resolve_run_dir("nosuch", runs_dir)


def test_load_classifier_and_predict_proba(tiny_run):
    runs_dir, _ = tiny_run
    loaded = load_classifier("tiny", "best", runs_dir, device="cpu")
    assert loaded.class_names == CLASS_NAMES and loaded.epoch == 2 and not loaded.model.training
    assert load_classifier("tiny", "last", runs_dir, device="cpu").epoch == 3
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    probs = loaded.predict_proba(images)
    assert probs.shape == (5, 3) and probs.dtype == torch.float32
    torch.testing.assert_close(probs.sum(1), torch.ones(5))
    torch.testing.assert_close(loaded.predict_proba(images, batch_size=2), probs)
    with pytest.raises(ValueError):
        loaded.predict_proba(images.float())


def test_load_classifier_errors(private_run, tmp_path):
    runs_dir, _ = private_run
    with pytest.raises(UserError, match="--checkpoint 'middle'"):
        load_classifier("tiny", "middle", runs_dir)
    (runs_dir / "tiny" / "best.pt").unlink()
    with pytest.raises(UserError, match="best.pt: checkpoint not found.*--checkpoint last"):
        load_classifier("tiny", "best", runs_dir)
    save_checkpoint(runs_dir / "tiny" / "best.pt", {"format": "shoegan-gan/1"})
    with pytest.raises(UserError, match="not a classifier checkpoint"):
        load_classifier("tiny", "best", runs_dir)
    (runs_dir / "tiny" / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable checkpoint"):
        load_classifier("tiny", "best", runs_dir)


# --- evaluation -----------------------------------------------------------------------------


def test_evaluate_run_writes_consistent_files(private_run):
    runs_dir, data = private_run
    metrics = evaluate_run(
        "tiny", runs_dir=runs_dir, device="cpu", batch_size=4, show_progress=False
    )
    out = runs_dir / "tiny" / "eval"
    for name in (
        "metrics.json",
        "confusion.json",
        "confusion.png",
        "curves.png",
        "predictions.csv",
    ):
        assert (out / name).is_file(), name
    for name in ("confusion.png", "curves.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC

    on_disk = read_json(out / "metrics.json")
    assert on_disk["accuracy"] == metrics["accuracy"]
    assert on_disk["checkpoint"] == "best" and on_disk["epoch"] == 2
    assert on_disk["class_names"] == CLASS_NAMES and on_disk["n_test"] == 15

    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == on_disk["n_test"]
    assert set(rows[0]) == {"file", "true", "predicted", *(f"p_{c}" for c in CLASS_NAMES)}
    assert all(not r["file"].startswith("/") and r["file"].startswith("test/") for r in rows)
    correct = sum(r["true"] == r["predicted"] for r in rows) / len(rows)
    assert on_disk["accuracy"] == pytest.approx(correct)

    confusion = read_json(out / "confusion.json")
    matrix = np.array(confusion["matrix"])
    assert matrix.sum() == on_disk["n_test"]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(on_disk["accuracy"])
    assert [on_disk["per_class"][c]["support"] for c in CLASS_NAMES] == matrix.sum(1).tolist()

    predictions = read_predictions(out / "predictions.csv")
    assert predictions.class_names == CLASS_NAMES
    assert mean_cross_entropy(predictions.probabilities, predictions.true) == pytest.approx(
        on_disk["loss"], abs=1e-4
    )
    assert on_disk["macro_f1"] == pytest.approx(
        macro_f1(confusion_matrix(predictions.true, predictions.predicted, 3))
    )
    # the briefly trained model separates the toy classes
    assert on_disk["accuracy"] > 0.6


def test_metrics_json_updates_merge(private_run):
    runs_dir, _ = private_run
    run_dir = runs_dir / "tiny"
    update_metrics(run_dir, {"cam": {"gradcam": {"value": 0.1}}})
    evaluate_run("tiny", runs_dir=runs_dir, device="cpu", show_progress=False)
    merged = update_metrics(run_dir, {"cam": {"eigencam": {"value": 0.2}}})
    assert merged["cam"] == {"gradcam": {"value": 0.1}, "eigencam": {"value": 0.2}}
    assert "accuracy" in read_metrics(run_dir) and "per_class" in read_metrics(run_dir)


def test_test_set_class_mismatch_is_a_user_error(private_run, tmp_path, make_dataset):
    runs_dir, _ = private_run
    other = make_dataset(tmp_path / "other", "halves", 1, 1, classes=["cats"])
    with pytest.raises(UserError, match="differ from the run's"):
        evaluate_run("tiny", runs_dir=runs_dir, device="cpu", data=other, show_progress=False)


def test_plot_functions_write_pngs(tmp_path):
    plot_confusion(np.array([[5, 1], [0, 4]]), ["Ankle boot", "Sneaker"], tmp_path / "c.png", "t")
    history = [
        {"epoch": 1, "train_loss": 1.0, "train_acc": 0.5},
        {"epoch": 2, "train_loss": 0.5, "train_acc": 0.7},
    ]  # no validation keys
    plot_curves({"a": history, "b": history[:1]}, tmp_path / "k.png")
    for name in ("c.png", "k.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC


# --- CLI --------------------------------------------------------------------------------------


def test_cli_evaluate_end_to_end(private_run, cli):
    runs_dir, _ = private_run
    result = cli(
        "evaluate",
        "tiny",
        "--runs-dir",
        runs_dir,
        "--checkpoint",
        "last",
        "--batch-size",
        "7",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    assert "macro-F1" in result.output and all(c in result.output for c in CLASS_NAMES)
    metrics = read_json(runs_dir / "tiny" / "eval" / "metrics.json")
    assert metrics["checkpoint"] == "last" and metrics["epoch"] == 3
    assert f"{100 * metrics['accuracy']:.2f}%" in result.output


@pytest.mark.parametrize("command", [["evaluate"], ["gradcam"], ["predict", "x.png"]])
def test_cli_unknown_run_exits_2_with_one_line(tiny_run, cli, command):
    runs_dir, _ = tiny_run
    result = cli(command[0], "nosuch", *command[1:], "--runs-dir", runs_dir)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: run 'nosuch' not found")


def test_cli_predict_top_k_and_json(tiny_run, cli, tmp_path):
    runs_dir, data = tiny_run
    images = [data / "test/boot/boot_00.png", data / "test/sneaker/sneaker_01.png"]
    result = cli("predict", "tiny", *images, "--top-k", "2", "--runs-dir", runs_dir)
    assert result.exit_code == 0, result.output
    assert "boot_00.png" in result.output and "sneaker_01.png" in result.output
    assert result.output.count("%") == 4  # 2 images x top-2

    result = cli("predict", "tiny", *images, "--top-k", "10", "--json", "--runs-dir", runs_dir)
    assert result.exit_code == 0, result.output
    predictions = json.loads(result.output)["predictions"]
    assert [len(p["top"]) for p in predictions] == [3, 3]  # clamped to the number of classes
    for p in predictions:
        probs = [t["probability"] for t in p["top"]]
        assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1, abs=1e-5)

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"garbage")
    result = cli("predict", "tiny", images[0], bad, "--runs-dir", runs_dir)
    assert result.exit_code == 2 and "broken.png: unreadable image" in result.output


def test_train_then_evaluate_and_gradcam_end_to_end(tiny_run, cli, tmp_path):
    """The real training command writes a run this module reads (contract between the two)."""
    _, data = tiny_run
    runs_dir = tmp_path / "runs"
    result = cli(
        "train",
        "--data",
        data,
        "--name",
        "e2e",
        "--runs-dir",
        runs_dir,
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--image-size",
        "32",
        "--width",
        "0.125",
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    result = cli("evaluate", "e2e", "--runs-dir", runs_dir, "--device", "cpu")
    assert result.exit_code == 0, result.output
    result = cli(
        "gradcam", "e2e", "--cam-per-class", "1", "--runs-dir", runs_dir, "--device", "cpu"
    )
    assert result.exit_code == 0, result.output
    metrics = read_json(runs_dir / "e2e" / "eval" / "metrics.json")
    assert metrics["epoch"] == 1 and metrics["n_test"] == 15
    assert set(metrics["cam"]) == {"gradcam"} and math.isfinite(metrics["cam"]["gradcam"]["value"])
