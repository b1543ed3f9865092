"""`cli compare`: pairing, statistics and the report, on two tiny runs trained for real (one epoch,
width 0.0625, 32 px), one of them on real + synthetic images with a manifest."""

from __future__ import annotations

import json
import math
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
from study.stats import bootstrap_delta, mcnemar_exact

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
    code, output = _compare(runs, "base", "aug", "--out", str(out), "--cam-per-class", "2")
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
    # One pair of runs: a statement about these two trained models (18 test images and models
    # trained for one epoch: no detectable difference), never a verdict about the method.
    assert report["verdict"] in md
    assert report["verdict"].startswith(
        "These two trained models do not differ detectably on this test set: "
    )
    assert report["verdict"].endswith(
        "A single pair of runs tells about these two trained models, not about the method: train "
        "three or more seeds of each and compare them as lists (cli compare a_s0,a_s1,a_s2 "
        "b_s0,b_s1,b_s2)."
    )
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
    code, output = _compare(runs, "base", "aug", "--out", str(out), "--cam-per-class", "0")
    assert code == 0, output
    assert read_json(out / "report.json")["evaluated"] == {}
    best = runs["runs"] / "aug" / "best.pt"
    later = os.path.getmtime(runs["runs"] / "aug" / "eval" / "predictions.csv") + 5
    os.utime(best, (later, later))
    code, output = _compare(runs, "base", "aug", "--out", str(out), "--cam-per-class", "0")
    assert code == 0, output
    assert list(read_json(out / "report.json")["evaluated"]) == ["aug"]


def _reseeded(runs: dict[str, Path], name: str, copy: str, seed: int) -> None:
    """``copy``: a copy of run ``name`` whose config.json records training seed ``seed``."""
    if (runs["runs"] / copy).exists():
        return
    shutil.copytree(runs["runs"] / name, runs["runs"] / copy)
    config = read_json(runs["runs"] / copy / "config.json")
    config["train"]["seed"] = seed
    (runs["runs"] / copy / "config.json").write_text(json.dumps(config))


def test_compare_seed_lists_pair_by_seed(runs: dict[str, Path]) -> None:
    _reseeded(runs, "base", "base_s2", 2)
    _reseeded(runs, "aug", "aug_s2", 2)
    out = runs["root"] / "seeds"
    # B's runs are listed in the other order: pairing goes by training seed, not by position.
    code, output = _compare(
        runs, "base,base_s2", "aug_s2,aug", "--out", str(out), "--cam-per-class", "0"
    )
    assert code == 0, output
    report = read_json(out / "report.json")
    assert report["sides"] == {"A": ["base", "base_s2"], "B": ["aug", "aug_s2"]}  # seed order
    assert [(p["a"], p["b"]) for p in report["pairs"]] == [("base", "aug"), ("base_s2", "aug_s2")]
    assert [(p["seed_a"], p["seed_b"]) for p in report["pairs"]] == [(1, 1), (2, 2)]
    # The copies predict exactly what their originals do: no spread between the seeds.
    accuracy = report["runs"]["A"][0]["accuracy"]
    assert report["seeds"]["A"]["accuracy"]["mean"] == pytest.approx(accuracy)
    assert report["seeds"]["A"]["accuracy"]["std"] == 0.0
    assert report["deltas"]["delta_std"] == 0.0
    # Two seeds: an interval over seeds and test images, but no verdict about the method.
    over = report["over_seeds"]
    assert over["verdict"] is None and over["interval"]["seeds"] == 2
    assert "Two seeds cannot tell whether the method does" in report["verdict"]
    assert report["verdict"].endswith("(cli compare a_s0,a_s1,a_s2 b_s0,b_s1,b_s2).")
    md = (out / "report.md").read_text()
    assert (out / "seeds.png").is_file() and "Seeds" in md and "verdict about the method" in md
    assert "cam" not in report["figures"] and report["cam"] is None
    # A seed on one side only is a one-line error naming the runs.
    code, output = _compare(runs, "base,base_s2", "aug", "--out", str(runs["root"] / "missing"))
    text = " ".join(output.split())
    assert code == 2 and "error: runs pair by training seed: A has base_s2 (seed 2) but B" in text
    assert "(its runs: aug (seed 1))" in text and not (runs["root"] / "missing").exists()


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
    # A right on 10 images, B on all 30: 20 discordant pairs one way, McNemar p = 2 / 2^20.
    assert report["verdict"].startswith(
        "These two trained models differ on this test set: B is better than A by +66.67 accuracy "
        "points (95% CI +"
    )
    assert "McNemar p = 1.91e-06). A single pair of runs tells about" in report["verdict"]
    assert report["direction"] == "better" and report["over_seeds"] is None
    blocks = build_blocks(report)
    md = render_markdown("a vs b", blocks)
    page = render_html("a vs b", blocks, tmp_path)
    assert "| test accuracy | 33.33% | 100.00% | +66.67 pts |" in md
    assert "verdict-better" in page and "<table>" in page and "<img" not in page


def _seeded(name: str, seed: int, right: int, n: int = 400) -> RunResult:
    """A fake run of training seed ``seed`` right on its first ``right`` of ``n`` images."""
    true = [i % 3 for i in range(n)]
    predicted = [t if i < right else (t + 1) % 3 for i, t in enumerate(true)]
    run = _fake_run(name, true, predicted)
    run.config = {"train": {"seed": seed}}
    return run


def test_compare_runs_pairs_by_seed_and_gives_a_verdict_from_three_seeds() -> None:
    side_a = [_seeded(f"a{s}", s, 200) for s in (0, 1, 2)]
    side_b = [_seeded(f"b{s}", s, right) for s, right in ((2, 320), (0, 300), (1, 310))]
    numbers = compare_runs(side_a, side_b, resamples=200)
    pairs = [(p["a"], p["b"]) for p in numbers["pairs"]]
    assert pairs == [("a0", "b0"), ("a1", "b1"), ("a2", "b2")]  # by seed, not by position
    # By hand. Seeds: deltas 0.25, 0.275, 0.30 (variance 0.025^2). Images: per-image deltas over
    # seeds are 1 on 100 images, 2/3 on 10, 1/3 on 10, 0 on 280 (sum of squares 100 + 50/9).
    image_var = (100 + 50 / 9 - 400 * 0.275**2) / 399
    se = math.sqrt(0.025**2 / 3 + image_var / 400)
    interval = numbers["over_seeds"]["interval"]
    assert interval["delta"] == pytest.approx(0.275) and interval["se"] == pytest.approx(se)
    assert interval["low"] == pytest.approx(0.275 - 4.302653 * se, abs=1e-6)
    t0 = 0.275 / se  # two degrees of freedom: p = 1 - t0 / sqrt(t0^2 + 2)
    assert interval["p_value"] == pytest.approx(1 - t0 / math.sqrt(t0 * t0 + 2))
    assert numbers["over_seeds"]["verdict"] == "better" and numbers["direction"] == "better"
    assert numbers["verdict"] == (
        "B is better than A: +27.50 accuracy points, 95% CI +16.28 to +38.72 over 3 seeds and "
        "the test images (p 0.00887)."
    )
    # With 40 test images the same seeds prove nothing: the test images' noise dominates.
    small_a = [_seeded(f"a{s}", s, 20, 40) for s in (0, 1, 2)]
    small_b = [_seeded(f"b{s}", s, 30 + s, 40) for s in (0, 1, 2)]
    assert compare_runs(small_a, small_b, resamples=200)["over_seeds"]["verdict"] == (
        "not established"
    )


def test_compare_runs_refuses_unpaired_seeds() -> None:
    side_a = [_seeded("a0", 0, 20), _seeded("a1", 1, 20)]
    with pytest.raises(UserError, match=r"^runs pair by training seed: A has a1 \(seed 1\) but"):
        compare_runs(side_a, [_seeded("b0", 0, 20), _seeded("b2", 2, 20)], resamples=100)
    with pytest.raises(UserError, match="B: runs b0 and b0x have the same training seed 0"):
        compare_runs(side_a, [_seeded("b0", 0, 20), _seeded("b0x", 0, 20)], resamples=100)
    no_seed = _seeded("b1", 1, 20)
    no_seed.config = {}
    with pytest.raises(UserError, match="B: run b1 records no training seed"):
        compare_runs(side_a, [_seeded("b0", 0, 20), no_seed], resamples=100)
    # Two single runs are one comparison of two trained models, whatever their seeds.
    numbers = compare_runs([_seeded("a0", 0, 20)], [_seeded("b5", 5, 30)], resamples=100)
    assert [(p["seed_a"], p["seed_b"]) for p in numbers["pairs"]] == [(0, 5)]


def test_seeds_figure_labels_of_long_run_names_do_not_overlap() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from study.compare.draw import _seeds_label
    from study.report.figures import seeds_figure

    sides = {
        "A": [f"footwear-s{s}-resnet50" for s in range(5)],
        "B": [f"footwear-s{s}-resnet50-cbam" for s in range(5)],
    }
    labels = [_seeds_label(side, names) for side, names in sides.items()]
    # every word of the side's label is kept: the lines join back into "B: footwear-s0-...+4"
    assert "".join(labels[1].splitlines()[:-1]) == "B: footwear-s0-resnet50-cbam+4"
    assert labels[1].splitlines()[-1] == "(5 runs)"
    values = {
        m: {s: [0.9, 0.91, 0.92, 0.93, 0.94] for s in sides} for m in ("accuracy", "macro_f1")
    }
    fig = seeds_figure(values, labels)
    renderer = FigureCanvasAgg(fig).get_renderer()
    for ax in fig.axes:
        a, b = (t.get_window_extent(renderer) for t in ax.get_xticklabels())
        assert a.x1 < b.x0, f"tick labels overlap: {a} and {b}"
    assert _seeds_label("A", ["baseline"]) == "A: baseline\n(1 run)"
