"""``cli gan-train --seeds N`` (study.gan_seeds): N GANs trained, scored and summarised."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from study.gan_seeds import seed_stat, summarize, summary_markdown

pytestmark = pytest.mark.usefixtures("private_cache")  # conftest.py


def _record(seed: int, fid: float, floor: float, recall: float) -> dict:
    metrics = {"fid": fid, "fid_floor_ratio": fid / floor, "kid_mean": 0.01, "precision": 0.5,
               "recall": recall, "density": 0.4, "coverage": 0.3, "floor_fid": floor,
               "untrained_fid": 400.0}  # fmt: skip
    return {"seed": seed, "gan_run": f"g-s{seed}", "synthetic": None, "iterations": 10,
            "train_seconds": 10.0 + seed, "metrics": {"a": metrics, "overall": metrics},
            "cas": None}  # fmt: skip


def test_seed_stat_is_the_sample_std_and_skips_missing() -> None:
    stat = seed_stat([1.0, 2.0, None, 4.0])
    assert stat["n"] == 3 and stat["mean"] == pytest.approx(7 / 3)
    assert stat["std"] == pytest.approx((7 / 3) ** 0.5)  # squares 16/9 + 1/9 + 25/9, over n - 1
    assert seed_stat([3.0])["std"] is None and seed_stat([None])["mean"] is None


def test_summary_over_seeds() -> None:
    summary = summarize([_record(0, 100.0, 50.0, 0.1), _record(1, 140.0, 50.0, 0.3)])
    fid = summary["metrics"]["a"]["fid"]
    assert fid["mean"] == 120.0 and fid["std"] == pytest.approx(800**0.5)  # (20^2 + 20^2) / 1
    assert summary["metrics"]["overall"]["fid_floor_ratio"]["mean"] == pytest.approx(2.4)
    assert summary["train_seconds"]["mean"] == 10.5 and summary["cas"]["n"] == 0
    text = summary_markdown(summary)
    assert "120.0 ± 28.3" in text and "2.40 ± 0.57" in text and "CAS" not in text


def test_cli_gan_train_seeds(
    make_dataset: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli import app
    from commands.configs import FEATURES_ENV

    monkeypatch.setenv(FEATURES_ENV, "random-conv")  # the stand-in: no option offers it

    data = make_dataset(tmp_path / "data", "colours", train_per_class=10, test_per_class=6)
    runs, synthetic = tmp_path / "runs", tmp_path / "synthetic"
    args = ["gan-train", "--data", str(data), "--name", "g", "--runs-dir", str(runs),
            "--iterations", "3", "--eval-every", "3", "--batch-size", "8", "--ngf", "8",
            "--ndf", "8", "--z-size", "16", "--embed-dim", "8", "--fid-samples", "0",
            "--device", "cpu", "--seeds", "2",
            "--seed", "5", "--score-per-class", "6", "--synthetic-dir", str(synthetic),
            "--preset", "quick", "--cas-model", "resnet50", "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in runs.iterdir()) == [
        "g-s5", "g-s5-cas", "g-s6", "g-s6-cas", "g-seeds"
    ]  # fmt: skip
    for seed in (5, 6):
        manifest = json.loads((synthetic / f"g-s{seed}" / "manifest.json").read_text())
        assert manifest["gan_run"] == f"g-s{seed}" and manifest["counts"] == {"blue": 6, "red": 6}
        assert json.loads((runs / f"g-s{seed}" / "config.json").read_text())["gan"]["seed"] == seed
    summary = json.loads((runs / "g-seeds" / "summary.json").read_text())
    assert summary["seeds"] == [5, 6] and set(summary["metrics"]) == {"blue", "red", "overall"}
    per_seed = [r["metrics"]["blue"]["fid"] for r in summary["per_seed"]]
    assert per_seed[0] != per_seed[1]  # different generators
    assert summary["metrics"]["blue"]["fid"]["mean"] == pytest.approx(np.mean(per_seed))
    assert summary["metrics"]["blue"]["fid"]["n"] == 2
    cas_config = json.loads((runs / "g-s5-cas" / "config.json").read_text())["train"]
    assert cas_config["train_on"] == "synthetic" and cas_config["epochs"] == 12  # quick preset
    assert summary["cas"]["n"] == 2 and 0 <= summary["cas"]["mean"] <= 1
    assert "GAN over 2 seeds" in result.output and "summary.md" in result.output
    # Run again: every seed's outputs are complete and kept, the summary is the same.
    stamp = (runs / "g-s5" / "last.pt").stat().st_mtime_ns
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert (runs / "g-s5" / "last.pt").stat().st_mtime_ns == stamp
    assert (
        json.loads((runs / "g-seeds" / "summary.json").read_text())["metrics"] == summary["metrics"]
    )


def test_cli_gan_train_seeds_bad_values() -> None:
    from cli import app

    result = CliRunner().invoke(app, ["gan-train", "--seeds", "0", "--data", "x"])
    assert result.exit_code == 2 and "--seeds 0: must be >= 1" in result.output
    result = CliRunner().invoke(app, ["gan-train", "--seeds", "2", "--nproc", "2"])
    assert result.exit_code == 2 and "one process" in result.output
