"""scripts/results.py: the docs' result tables are made from the study JSON, and the tables in
the repository are the ones their JSON makes today."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from test_arm_table import _runs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def results():
    spec = importlib.util.spec_from_file_location("results", ROOT / "scripts" / "results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_tables_are_what_their_json_makes(results) -> None:
    for path in results.documents():
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert results.regenerate(text) == text, f"{path}: run scripts/results.py"
    assert results.main(["--check"]) == 0


def test_an_arms_table_is_rendered_from_its_json(results, tmp_path: Path) -> None:
    from study.pipeline.arms import arm_table

    table = arm_table(_runs({0: (100, 0), 1: (110, 0), 2: (90, 0)}), resamples=200)
    (tmp_path / "docs").mkdir()
    source = tmp_path / "docs" / "s-study.json"
    source.write_text(json.dumps({"arms": table}), encoding="utf-8")
    page = (
        "Before.\n<!-- results: docs/s-study.json -->\nstale numbers\n<!-- /results -->\nAfter.\n"
    )
    text = results.regenerate(page, tmp_path)
    interval = table["arms"]["real+gan"]["interval"]
    delta = f"+{100 * interval['delta']:.2f} ({100 * interval['low']:+.2f} to "
    assert text.startswith("Before.\n<!-- results: docs/s-study.json -->\n| arm |")
    assert "stale numbers" not in text and text.endswith("<!-- /results -->\nAfter.\n")
    assert f"| real+gan | 85.00 ± 0.50 | {delta}" in text and "| better |" in text
    assert "| real | 80.00 ± 0.00 |" in text and table["verdict"] in text
    assert results.regenerate(text, tmp_path) == text  # made twice: the same


def test_a_learning_curve_and_a_missing_json(results, tmp_path: Path) -> None:
    curve = {
        "sizes": [10, 50],
        "band": "95% t-interval over seeds",
        "points": {
            str(n): {
                "real": {"mean": 0.5 + n / 200, "low": 0.4, "high": 0.6 + n / 200},
                "real+gan": {
                    "mean": 0.52,
                    "low": 0.5,
                    "high": 0.54,
                    "delta": {"delta": 0.01, "low": -0.02, "high": 0.04, "p_holm": 0.5},
                },
            }
            for n in (10, 50)
        },
    }
    (tmp_path / "c-learning-curve.json").write_text(json.dumps(curve), encoding="utf-8")
    text = results.regenerate(
        "<!-- results: c-learning-curve.json -->\n<!-- /results -->", tmp_path
    )
    assert "| 50 | real | 75.00 | 40.00 to 85.00 |  |  |" in text
    assert "| 10 | real+gan | 52.00 | 50.00 to 54.00 | +1.00 (-2.00 to +4.00) | 0.5 |" in text
    with pytest.raises(SystemExit, match="missing"):
        results.regenerate("<!-- results: nope.json -->\n<!-- /results -->", tmp_path)


def test_a_compare_report_of_seed_lists_is_rendered(results, tmp_path: Path) -> None:
    from study.compare.numbers import compare_runs

    runs = _runs({0: (100, 0), 1: (110, 0), 2: (90, 0)})  # B right on 100/110/90 more images
    for seed, run in enumerate(runs["real"]):
        run.metrics["val_acc"] = 0.5 + seed / 100
    numbers = compare_runs(runs["real"], runs["real+gan"], resamples=200)
    report = {"format": "shoegan-compare/1", **numbers}
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "c.json").write_text(json.dumps(report), encoding="utf-8")
    page = "<!-- results: docs/c.json -->\n<!-- /results -->\n"
    text = results.regenerate(page, tmp_path)
    accuracy = {side: numbers["seeds"][side]["accuracy"] for side in ("A", "B")}
    for side, acc in accuracy.items():
        names = ", ".join(numbers["seeds"][side]["runs"])
        row = f"| {side} | {names} | {100 * acc['mean']:.2f} ± {100 * acc['std']:.2f} |"
        assert row in text, text
    assert "| A | real-s0, real-s1, real-s2 | " in text and "| 51.00 |" in text
    interval = numbers["over_seeds"]["interval"]
    delta = f"{100 * interval['delta']:+.2f} ({100 * interval['low']:+.2f} to {100 * interval['high']:+.2f})"
    assert f"B − A over 3 seeds and {numbers['n_test']:,} test images: {delta} points" in text
    assert f"verdict: {numbers['over_seeds']['verdict']}." in text and numbers["verdict"] in text


def test_a_compare_of_same_named_runs_in_two_studies_names_their_folders(
    results, tmp_path: Path
) -> None:
    from study.compare.numbers import compare_runs

    runs = _runs({0: (100, 0), 1: (110, 0), 2: (90, 0)})
    report = {"format": "shoegan-compare/1", **compare_runs(runs["real"], runs["real"])}
    (tmp_path / "docs").mkdir()
    source = tmp_path / "docs" / "c.json"
    page = "<!-- results: docs/c.json -->\n<!-- /results -->\n"
    source.write_text(json.dumps(report), encoding="utf-8")
    assert "| folder |" not in results.regenerate(page, tmp_path)  # one folder: no column

    for side, root in (("A", "/w/study/runs/epochs-72"), ("B", "/w/study/transfer/runs/epochs-36")):
        for run in report["runs"][side]:
            run["run_dir"] = f"{root}/{run['name']}"
    source.write_text(json.dumps(report), encoding="utf-8")
    text = results.regenerate(page, tmp_path)
    assert "| side | runs | folder | test acc % (mean ± sd) | val acc % (mean) |" in text
    assert "| A | real-s0, real-s1, real-s2 | runs/epochs-72 | " in text
    assert "| B | real-s0, real-s1, real-s2 | transfer/runs/epochs-36 | " in text
