"""`cli pipeline` end to end on a tiny dataset, its numbers against the runs' files, its resume,
and the augmented-training pieces it relies on (class mismatch, equal step budget)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from shapes_dataset import make_shapes_dataset
from typer.testing import CliRunner

TINY = ["--epochs", "1", "--width", "0.0625", "--image-size", "32", "--gan-iterations", "4",
        "--gan-width", "8", "--per-class", "6", "--cam-per-class", "1",
        "--models", "resnet50,resnet50-se", "--device", "cpu",
        "--feature-extractor", "random-conv"]  # fmt: skip


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], dict]:
    from cli import app

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("pipeline")
    data = make_shapes_dataset(root / "shapes", train_per_class=8, test_per_class=4)
    args = ["pipeline", "--data", str(data), "--runs-dir", str(root / "runs"),
            "--synthetic-dir", str(root / "synthetic"), "--reports-dir", str(root / "reports"),
            *TINY]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return root, args, json.loads((root / "runs" / "shapes-study.json").read_text())


def test_every_step_leaves_its_outputs(study: tuple[Path, list[str], dict]) -> None:
    root, _, summary = study
    runs = root / "runs"
    best = summary["best_model"]
    for name in ("shapes-s0-resnet50", "shapes-s0-resnet50-se", f"shapes-s0-{best}-aug",
                 f"shapes-cas-{best}"):  # fmt: skip
        assert (runs / name / "best.pt").is_file()
        assert (runs / name / "eval" / "metrics.json").is_file()
    assert (runs / "shapes-gan" / "best.pt").is_file()
    manifest = json.loads((root / "synthetic" / "shapes-gan" / "manifest.json").read_text())
    assert manifest["counts"] == {"circle": 6, "square": 6, "triangle": 6} or all(
        n == 6 for n in manifest["counts"].values()
    )
    assert "cas" in manifest and 0.0 <= manifest["cas"]["test_acc"] <= 1.0
    report = Path(summary["report"])
    assert report.is_file() and (report.parent / "report.md").is_file()
    assert [s["status"] for s in summary["steps"]].count("ran") == len(summary["steps"])


def test_report_numbers_equal_the_runs_metrics(study: tuple[Path, list[str], dict]) -> None:
    root, _, summary = study
    report = json.loads((Path(summary["report"]).parent / "report.json").read_text())
    text = json.dumps(report)
    for run in (*summary["baseline_runs"], *summary["augmented_runs"]):
        metrics = json.loads((root / "runs" / run / "eval" / "metrics.json").read_text())
        assert str(metrics["accuracy"]) in text or repr(metrics["accuracy"]) in text
        assert repr(metrics["macro_f1"]) in text
    # The augmented run trained on real + synthetic with the baseline's step budget.
    base = json.loads((root / "runs" / summary["baseline_runs"][0] / "config.json").read_text())
    aug = json.loads((root / "runs" / summary["augmented_runs"][0] / "config.json").read_text())
    assert aug["train"]["epoch_size"] == base["dataset"]["n_train"]
    assert aug["synthetic"]["path"].endswith("shapes-gan")
    assert {
        k: v for k, v in aug["train"].items() if k not in ("name", "synthetic", "epoch_size")
    } == {k: v for k, v in base["train"].items() if k not in ("name", "synthetic", "epoch_size")}
    hist_a = (root / "runs" / summary["baseline_runs"][0] / "history.jsonl").read_text()
    hist_b = (root / "runs" / summary["augmented_runs"][0] / "history.jsonl").read_text()
    assert len(hist_a.splitlines()) == len(hist_b.splitlines())


def test_rerun_skips_finished_steps(study: tuple[Path, list[str], dict]) -> None:
    from cli import app

    root, args, _ = study
    stamp = (root / "runs" / "shapes-gan" / "last.pt").stat().st_mtime_ns
    # Simulate an interruption in the augmented step: its run folder is removed.
    summary = json.loads((root / "runs" / "shapes-study.json").read_text())
    import shutil

    shutil.rmtree(root / "runs" / summary["augmented_runs"][0])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    again = json.loads((root / "runs" / "shapes-study.json").read_text())
    status = {s["step"]: s["status"] for s in again["steps"]}
    assert status["classifiers seed 0"].startswith("skipped")
    assert status["gan-train"].startswith("skipped")
    assert status["synthesize"].startswith("skipped")
    assert status["augmented seed 0"] == "ran"
    assert (root / "runs" / "shapes-gan" / "last.pt").stat().st_mtime_ns == stamp


def test_a_synthetic_ratio_adds_its_own_augmented_run(
    study: tuple[Path, list[str], dict],
) -> None:
    from cli import app

    root, args, _ = study
    result = CliRunner().invoke(app, [*args, "--synthetic-ratio", "0.5", "--no-cas"])
    assert result.exit_code == 0, result.output
    summary = json.loads((root / "runs" / "shapes-study-r0.5.json").read_text())
    status = {s["step"]: s["status"] for s in summary["steps"]}
    assert status["gan-train"].startswith("skipped") and status["augmented seed 0"] == "ran"
    (aug,) = summary["augmented_runs"]
    assert aug.endswith("-aug-r0.5")
    config = json.loads((root / "runs" / aug / "config.json").read_text())
    assert config["train"]["synthetic_ratio"] == 0.5
    counts = config["synthetic"]["counts"]
    real = config["dataset"]["train_class_counts"]
    assert counts == {name: round(0.5 * n) for name, n in real.items()}
    assert Path(summary["report"]).parent.name.endswith("-baseline-vs-augmented-r0.5")


def test_synthetic_class_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    from cli import app

    data = make_shapes_dataset(tmp_path / "data", train_per_class=4, test_per_class=2)
    for name in ("circle", "square", "hexagon"):
        (tmp_path / "syn" / name).mkdir(parents=True)
        Image.new("RGB", (32, 32), "red").save(tmp_path / "syn" / name / "0.png")
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--data",
            str(data),
            "--name",
            "x",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--synthetic",
            str(tmp_path / "syn"),
            "--epochs",
            "1",
            "--width",
            "0.0625",
            "--image-size",
            "32",
            "--device",
            "cpu",
        ],  # fmt: skip
    )
    assert result.exit_code == 2
    assert "synthetic classes" in result.output and "hexagon" in result.output
