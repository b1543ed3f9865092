"""`cli compare`: pairing, statistics and the report, on two tiny runs trained for real (one epoch,
width 0.0625, 32 px), one of them on real + synthetic images with a manifest."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from classify.evaluation.evaluate import Predictions, read_predictions
from core.errors import UserError
from core.io import read_json
from study.compare.numbers import compare_runs, holm_adjust, pair_numbers
from study.compare.runs import RunResult, check_pairable, parse_run_list
from study.report.content import build_blocks
from study.report.html import render_html
from study.report.markdown import render_markdown
from study.stats import bootstrap_delta, mcnemar_exact, mean_std

CLASSES = ["circle", "square", "triangle"]
RESAMPLES = 500


def _fid(value: float) -> dict[str, float | int]:
    return {
        "fid": value,
        "kid_mean": value / 1000,
        "kid_std": 0.002,
        "kid_subset_size": 6,
        "n_a": 8,
        "n_b": 6,
        # distinct, recognisable values for the diversity table
        "precision": 0.1 + value / 1000,
        "recall": 0.2 + value / 1000,
        "density": 0.3 + value / 1000,
        "coverage": 0.4 + value / 1000,
    }


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, make_dataset: Callable[..., Path]
) -> dict[str, Path]:
    """A shapes dataset, a synthetic set with a manifest, and two runs trained for one epoch."""
    from classify.training.config import TrainConfig
    from classify.training.trainer import train

    root = tmp_path_factory.mktemp("compare")
    data = make_dataset(root / "data", "shapes", train_per_class=8, test_per_class=6, size=32)
    synthetic = (
        make_dataset(root / "gen", "shapes", train_per_class=6, test_per_class=0, size=32, seed=5)
        / "train"
    )
    (synthetic / "manifest.json").write_text(
        json.dumps(
            {
                "gan_run": "gan-tiny",
                "class_names": CLASSES,
                "counts": dict.fromkeys(CLASSES, 6),
                "image_size": 32,
                "fid": {
                    "per_class": {c: _fid(40.0 + i) for i, c in enumerate(CLASSES)},
                    "overall": _fid(33.0),
                    "real_vs_real": {c: _fid(11.0 + i) for i, c in enumerate(CLASSES)},
                    "real_vs_real_overall": _fid(9.0),
                },
            }
        )
    )
    for name, synth in (("base", None), ("aug", str(synthetic))):
        train(
            TrainConfig(
                data=str(data),
                name=name,
                runs_dir=str(root / "runs"),
                epochs=1,
                batch_size=8,
                image_size=32,
                width=0.0625,
                device="cpu",
                seed=1,
                synthetic=synth,
            ),
            progress=False,
        )
    return {"root": root, "data": data, "runs": root / "runs", "synthetic": synthetic}


def _compare(runs: dict[str, Path], *args: str) -> tuple[int, str]:
    from cli import app

    result = CliRunner().invoke(
        app,
        [
            "compare",
            *args,
            "--runs-dir",
            str(runs["runs"]),
            "--resamples",
            str(RESAMPLES),
            "--device",
            "cpu",
        ],
    )
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def _correct(run_dir: Path, order: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    p = read_predictions(run_dir / "eval" / "predictions.csv")
    index = {f: i for i, f in enumerate(p.files)}
    rows = [index[f] for f in (order or p.files)]
    return (p.true == p.predicted)[rows], list(order or p.files)


@pytest.mark.slow
def test_compare_report_matches_runs_and_stats(runs: dict[str, Path]) -> None:
    out = runs["root"] / "report"
    code, output = _compare(runs, "base", "aug", "--out", str(out), "--per-class", "2")
    assert code == 0, output
    report = read_json(out / "report.json")
    for name in (
        "report.md",
        "report.html",
        "curves.png",
        "confusion.png",
        "gradcam_gradcam.png",
        "synthetic_0.png",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert set(report["evaluated"]) == {"base", "aug"}  # compare evaluated the fresh runs itself

    # The report's numbers are the runs' own evaluation numbers ...
    for side, name in (("A", "base"), ("B", "aug")):
        metrics = read_json(runs["runs"] / name / "eval" / "metrics.json")
        run = report["runs"][side][0]
        assert run["name"] == name and run["n_test"] == metrics["n_test"] == 18
        assert run["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-12)
        assert run["macro_f1"] == pytest.approx(metrics["macro_f1"], abs=1e-12)
        for cls in CLASSES:
            assert run["per_class"][cls]["recall"] == pytest.approx(
                metrics["per_class"][cls]["recall"], abs=1e-12
            )
    # ... and the paired statistics are study.stats applied to predictions.csv, paired by file.
    correct_a, files = _correct(runs["runs"] / "base")
    correct_b, _ = _correct(runs["runs"] / "aug", files)
    pair = report["pairs"][0]
    assert (
        pair["bootstrap"]
        == bootstrap_delta(correct_a, correct_b, resamples=RESAMPLES, seed=0).to_dict()
    )
    assert pair["mcnemar"] == mcnemar_exact(correct_a, correct_b).to_dict()
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    assert report["verdict"] in md and "significant" in report["verdict"]
    assert f"{100 * report['runs']['A'][0]['accuracy']:.2f}%" in md
    # Markdown links PNGs next to it; the HTML embeds every figure and loads nothing from outside.
    for file in report["figures"].values():
        assert f"]({file})" in md
    assert page.count('src="data:image/png;base64,') == len(report["figures"])
    assert "http://" not in page and "https://" not in page
    # Grad-CAM on the same images for both models, with a faithfulness number each.
    cam = report["cam"]
    assert len(cam["files"]) == 2 * len(CLASSES)
    assert len(cam["predicted"]["A"]) == len(cam["predicted"]["B"]) == len(cam["files"])
    assert {"A", "B"} <= set(cam["faithfulness"]) and "Class activation maps" in md
    # The synthetic run's set: per-class FID/KID and the real-vs-real floor from its manifest.
    (entry,) = report["synthetic"]
    assert entry["run"] == "aug" and entry["fid_per_class"]["square"]["fid"] == 41.0
    assert entry["real_vs_real"]["triangle"]["fid"] == 13.0
    assert "Synthetic training data" in md and "41.00" in md and "13.00" in md
    # The "all classes" row has the overall floor; the diversity table has P/R/D/C of both.
    overall_row = next(
        line for line in md.splitlines() if line.startswith("| all classes") and "33.00" in line
    )
    assert "9.00" in overall_row
    assert entry["real_vs_real_overall"]["fid"] == 9.0
    diversity = next(
        line for line in md.splitlines() if line.startswith("| all classes") and "0.133" in line
    )
    assert all(f"{v:.3f}" in diversity for v in (0.133, 0.233, 0.333, 0.433, 0.109, 0.409))
    assert "Synthetic training data" in page

    # A second report reuses the evaluations; a newer checkpoint makes compare evaluate again.
    code, output = _compare(runs, "base", "aug", "--out", str(out), "--per-class", "0")
    assert code == 0, output
    assert read_json(out / "report.json")["evaluated"] == {}
    best = runs["runs"] / "aug" / "best.pt"
    later = os.path.getmtime(runs["runs"] / "aug" / "eval" / "predictions.csv") + 5
    os.utime(best, (later, later))
    code, output = _compare(runs, "base", "aug", "--out", str(out), "--per-class", "0")
    assert code == 0, output
    assert list(read_json(out / "report.json")["evaluated"]) == ["aug"]


def test_compare_seed_lists(runs: dict[str, Path]) -> None:
    out = runs["root"] / "seeds"
    code, output = _compare(runs, "base,aug", "aug,base", "--out", str(out), "--per-class", "0")
    assert code == 0, output
    report = read_json(out / "report.json")
    assert report["sides"] == {"A": ["base", "aug"], "B": ["aug", "base"]}
    assert [(p["a"], p["b"]) for p in report["pairs"]] == [("base", "aug"), ("aug", "base")]
    accuracies = [r["accuracy"] for r in report["runs"]["A"]]
    assert report["seeds"]["A"]["accuracy"]["mean"] == pytest.approx(mean_std(accuracies)[0])
    assert report["seeds"]["A"]["accuracy"]["std"] == pytest.approx(mean_std(accuracies)[1])
    # Swapped pairs: the deltas cancel exactly.
    assert report["deltas"]["delta_mean"] == pytest.approx(0.0, abs=1e-12)
    assert (out / "seeds.png").is_file() and "Seeds" in (out / "report.md").read_text()
    assert "cam" not in report["figures"] and report["cam"] is None


def test_compare_refuses_different_test_sets(runs: dict[str, Path]) -> None:
    from classify.evaluation.evaluate import evaluate_run

    other_data = runs["root"] / "data_other"
    shutil.copytree(runs["data"], other_data)
    next(iter(sorted((other_data / "test" / "square").iterdir()))).unlink()
    shutil.copytree(runs["runs"] / "base", runs["runs"] / "other")
    evaluate_run(
        "other", "best", runs_dir=runs["runs"], device="cpu", data=other_data, show_progress=False
    )
    code, output = _compare(runs, "base", "other", "--out", str(runs["root"] / "bad"))
    assert code == 2
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines[0].startswith("error:") and "different test sets" in output
    assert "1 test file(s) only in base" in " ".join(output.split())
    assert not (runs["root"] / "bad").exists()
    # A report folder inside a run folder is refused too.
    code, output = _compare(runs, "base", "aug", "--out", str(runs["runs"] / "aug" / "rep"))
    assert code == 2 and "inside the run folder" in " ".join(output.split())


# --- pure parts -----------------------------------------------------------------------------------


def _fake_run(
    name: str,
    true: list[int],
    predicted: list[int],
    files: list[str] | None = None,
    classes: list[str] = CLASSES,
) -> RunResult:
    n = len(true)
    probs = np.eye(len(classes))[predicted]
    predictions = Predictions(
        files or [f"test/{i:03d}.png" for i in range(n)],
        np.array(true),
        np.array(predicted),
        probs,
        list(classes),
    )
    return RunResult(name, Path(name), {"checkpoint": "best"}, predictions, {}, [])


def test_pairing_by_file_and_per_class_tests() -> None:
    true = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    a = _fake_run("a", true, [0, 1, 1, 1, 1, 0, 2, 2, 0])
    # b lists the same files in reverse order: pairing must go by file, not by row.
    files = [f"test/{i:03d}.png" for i in range(9)][::-1]
    b = _fake_run("b", true[::-1], [0, 0, 0, 1, 1, 1, 2, 2, 2][::-1], files)
    pair = pair_numbers(a, b, resamples=200, seed=0)
    assert pair["accuracy_a"] == pytest.approx(5 / 9) and pair["accuracy_b"] == 1.0
    assert pair["mcnemar"]["only_a_correct"] == 0 and pair["mcnemar"]["only_b_correct"] == 4
    circle = pair["per_class"]["circle"]
    assert (circle["n"], circle["only_b_correct"], circle["delta"]) == (3, 2, pytest.approx(2 / 3))
    assert pair["per_class"]["square"]["p_value"] == 1.0  # 1 discordant image: p = 1
    with pytest.raises(UserError, match="different test sets"):
        check_pairable(a, _fake_run("c", true[:8], true[:8]))
    with pytest.raises(UserError, match="class names differ"):
        check_pairable(a, _fake_run("d", true, true, classes=["x", "y", "z"]))


def test_holm_and_run_lists() -> None:
    assert holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm_adjust([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert parse_run_list("a, b,,c") == ("a", "b", "c")
    assert parse_run_list(["a", "b,c"]) == ("a", "b", "c")
    with pytest.raises(UserError):
        parse_run_list(" , ")


def test_report_renders_without_figures(tmp_path: Path) -> None:
    true = [0, 1, 2] * 10
    numbers = compare_runs(
        [_fake_run("a", true, [0] * 30)], [_fake_run("b", true, true)], resamples=300
    )
    report = {
        **numbers,
        "sides": {"A": ["a"], "B": ["b"]},
        "figures": {},
        "cam": None,
        "synthetic": [],
        "evaluated": {},
        "created": "now",
        "settings": {"checkpoint": "best", "cam_method": "gradcam", "per_class": 0, "seed": 0},
    }
    assert "significantly better" in report["verdict"]
    blocks = build_blocks(report)
    md = render_markdown("a vs b", blocks)
    page = render_html("a vs b", blocks, tmp_path)
    assert "| test accuracy | 33.33% | 100.00% | +66.67 pts |" in md
    assert "verdict-better" in page and "<table>" in page and "<img" not in page
