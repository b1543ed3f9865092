"""`cli train-all`: every model trained, evaluated and ranked; --resume keeps finished runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

TINY = ["--image-size", "32", "--width", "0.0625", "--epochs", "1", "--batch-size", "16"]


@pytest.mark.slow
def test_train_all_trains_ranks_and_resumes(
    tmp_path: Path, make_dataset: Callable[..., Path]
) -> None:
    from cli import app

    data = make_dataset(tmp_path / "data", "shapes", train_per_class=8, test_per_class=4)
    runs = tmp_path / "runs"
    args = ["train-all", "--data", str(data), "--runs-dir", str(runs), "--models",
            "resnet50,resnet50-se", "--cam-per-class", "1", "--device", "cpu", *TINY]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((runs / "models.json").read_text())
    assert [r["run"] for r in summary["runs"]] == ["resnet50", "resnet50-se"]
    best = max(summary["runs"], key=lambda r: (r["val_acc"], -r["params"]))
    assert summary["best"] == best["run"]
    for row in summary["runs"]:
        metrics = json.loads((runs / row["run"] / "eval" / "metrics.json").read_text())
        assert row["test_acc"] == metrics["accuracy"]
        assert row["cam_faithfulness"] == metrics["cam"]["gradcam"]["value"]
        assert (runs / row["run"] / "eval" / "gradcam_gradcam.png").is_file()
    # A second call without --resume refuses; with --resume it keeps the finished runs as they are.
    assert CliRunner().invoke(app, args).exit_code == 2
    stamp = (runs / "resnet50" / "best.pt").stat().st_mtime_ns
    result = CliRunner().invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert (runs / "resnet50" / "best.pt").stat().st_mtime_ns == stamp


def test_pick_best_ties_go_to_fewer_parameters() -> None:
    from classify.training.train_all import pick_best

    rows = [
        {"run": "a", "val_acc": 0.9, "params": 30},
        {"run": "b", "val_acc": 0.9, "params": 20},
        {"run": "c", "val_acc": 0.8, "params": 10},
    ]
    assert pick_best(rows)["run"] == "b"
