"""`cli pipeline --epochs 1,2`: the study at each budget, one GAN shared, each arm's budget chosen
on validation accuracy, the selected table built from the chosen runs, and the rule's pieces."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

TINY = ["--width", "0.0625", "--image-size", "32", "--gan-iterations", "4", "--gan-width", "8",
        "--per-class", "6", "--cam-per-class", "1", "--models", "resnet50-se", "--device", "cpu",
        "--no-cas"]  # fmt: skip


pytestmark = pytest.mark.usefixtures("standin_features")


def _table(vals: dict[str, list[float | None]], delta: dict[str, tuple[float, float]]) -> dict:
    arms = {}
    for arm, val in vals.items():
        arms[arm] = {"val_best": val, "mean": 0.5}
        if arm in delta:
            low, high = delta[arm]
            arms[arm]["interval"] = {"delta": (low + high) / 2, "low": low, "high": high}
    return {"arms": arms, "verdict": "v"}


def test_each_arm_takes_its_best_validation_budget_ties_to_the_smaller() -> None:
    from core.errors import UserError
    from study.pipeline.budgets import choose_budgets, parse_budgets, unsettled_arms

    tables = {
        12: _table({"real": [0.8, 0.8], "real+gan": [0.9, 0.7]}, {"real+gan": (-0.01, 0.02)}),
        24: _table({"real": [0.9, 0.8], "real+gan": [0.8, 0.8]}, {"real+gan": (0.01, 0.03)}),
        48: _table({"real": [0.85, 0.85], "real+gan": [0.7, 0.7]}, {"real+gan": (-0.03, -0.01)}),
    }
    assert choose_budgets(tables) == {"real": 24, "real+gan": 12}  # 0.85 = 0.85: the smaller
    assert unsettled_arms(tables) == ["real+gan"]  # above 0 at 24, below at 48
    tables[48]["arms"]["real+gan"]["interval"].update(low=0.005, high=0.02)
    assert unsettled_arms(tables) == []
    tables[24]["arms"]["real"]["val_best"] = [None, None]
    with pytest.raises(UserError, match="needs validation accuracy"):
        choose_budgets(tables)
    # More hand-computed cases: means 0.70 / 0.75 / 0.75 -> 12 loses, 24 and 48 tie -> 24; one
    # budget -> that budget; an arm whose only best is the largest budget takes it.
    three = {
        12: _table({"real": [0.6, 0.8], "real+gan": [0.5, 0.5]}, {}),
        24: _table({"real": [0.7, 0.8], "real+gan": [0.6, 0.6]}, {}),
        48: _table({"real": [0.75, 0.75], "real+gan": [0.61, 0.6]}, {}),
    }
    assert choose_budgets(three) == {"real": 24, "real+gan": 48}
    assert choose_budgets({6: three[12]}) == {"real": 6, "real+gan": 6}
    assert choose_budgets({48: three[48], 12: three[12]}) == {"real": 48, "real+gan": 48}
    assert parse_budgets(None) == () and parse_budgets("24,12,24") == (12, 24)
    for bad in ("12,x", "0,12", ","):
        with pytest.raises(UserError, match="--epochs"):
            parse_budgets(bad)


def test_the_verdict_names_the_best_arm_by_validation_not_test() -> None:
    from study.pipeline.arms import arm_verdict

    interval = {"delta": 0.02, "low": 0.01, "high": 0.03, "p_value": 0.005, "p_holm": 0.01}
    test_only = {"delta": 0.02, "low": 0.015, "high": 0.025}
    three = [0.8, 0.8, 0.8]
    rows = {
        "real": {"mean": 0.80, "accuracy": three, "val_best": [0.9] * 3},
        "real+gan": {"mean": 0.85, "val_best": [0.8] * 3, "interval": interval,
                     "test_only": test_only},  # best on test
        "real+trivialaugment": {"mean": 0.82, "val_best": [0.95] * 3, "interval": interval,
                                "test_only": test_only},
    }  # fmt: skip
    assert arm_verdict(rows) == (
        "Best arm by validation accuracy (95.00%, mean over seeds): real+trivialaugment; on test "
        "82.00% vs 80.00% for real only. real+trivialaugment is better than real only: +2.00 "
        "accuracy points, 95% CI +1.00 to +3.00 over 3 seeds and the test images (Holm-adjusted p "
        "0.01)."
    )
    rows["real+trivialaugment"]["val_best"] = [0.9] * 3  # a tie with real: real is kept
    assert arm_verdict(rows) == (
        "Best arm by validation accuracy (90.00%, mean over seeds): real only; no arm is chosen "
        "over it (test 80.00%)."
    )
    rows["real"]["val_best"] = [None]
    assert arm_verdict(rows).startswith(
        "Best arm by mean test accuracy (no validation split to choose on): real+gan; on test "
        "85.00% vs 80.00%"
    )


@pytest.mark.slow
def test_a_budget_grid_shares_the_gan_and_chooses_on_validation(
    tmp_path: Path, make_dataset: Callable[..., Path]
) -> None:
    from cli import app

    data = make_dataset(tmp_path / "shapes", "shapes", train_per_class=8, test_per_class=4)
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    args = ["pipeline", "--data", str(data), "--runs-dir", str(runs), "--synthetic-dir",
            str(tmp_path / "synthetic"), "--reports-dir", str(reports), *TINY, "--seeds", "2",
            "--arms", "real,real+gan", "--epochs", "2,1"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    grid = json.loads((runs / "shapes-budgets.json").read_text())
    assert grid["budgets"] == [1, 2] and grid["seeds"] == 2
    # One GAN, trained once in the shared runs folder; each budget's classifiers in their own.
    assert (runs / "shapes-gan" / "best.pt").is_file()
    assert not any((runs / f"epochs-{e}" / "shapes-gan").exists() for e in (1, 2))
    first, second = (
        json.loads((runs / f"epochs-{e}" / "shapes-pipeline.json").read_text())["steps"]
        for e in (1, 2)
    )
    status = {s["step"]: s["status"] for s in second}
    assert status["gan-train"] == status["synthesize"] == "skipped (complete)"
    assert {s["step"]: s["status"] for s in first}["gan-train"] == "ran"
    for e in (1, 2):
        config = json.loads(
            (runs / f"epochs-{e}" / "shapes-s0-resnet50-se" / "config.json").read_text()
        )
        assert config["train"]["epochs"] == e
    # The grid's validation numbers are the runs' own: the mean over seeds of each history's best
    # (the rule that chooses from them has its hand-computed cases above).
    for arm, suffix in (("real", ""), ("real+gan", "-aug")):
        for e in (1, 2):
            best = []
            for seed in (0, 1):
                history = (
                    runs / f"epochs-{e}" / f"shapes-s{seed}-resnet50-se{suffix}" / "history.jsonl"
                )
                best.append(
                    max(json.loads(line)["val_acc"] for line in history.read_text().splitlines())
                )
            assert grid["grid"][str(e)][arm]["val"] == pytest.approx(statistics.mean(best))
        chosen = grid["chosen"][arm]
        row = grid["arms"]["arms"][arm]
        assert row["epochs"] == chosen in (1, 2)
        # The selected row is the chosen budget's runs, their test numbers unchanged.
        study = json.loads((runs / f"epochs-{chosen}" / "shapes-study.json").read_text())
        assert row["accuracy"] == study["arms"]["arms"][arm]["accuracy"]
        assert row["runs"] == study["arms"]["arms"][arm]["runs"]
    interval = grid["arms"]["arms"]["real+gan"]["interval"]
    assert interval["low"] <= interval["delta"] <= interval["high"] and interval["seeds"] == 2
    # Two seeds: no verdict about the method, and the command that runs a third.
    assert grid["arms"]["arms"]["real+gan"]["verdict"] is None
    assert "--seeds 3 (finished runs are kept)" in grid["arms"]["verdict"]
    # The report: the grid, each budget's verdict, the rule, the selected table and the figure.
    md = (Path(grid["report"]).parent / "budgets.md").read_text()
    page = Path(grid["report"]).read_text()
    assert grid["arms"]["verdict"] in page and "Each arm at its chosen budget" in page
    assert "Budget chosen per arm on validation accuracy" in md and grid["arms"]["verdict"] in md
    for e in (1, 2):
        assert f"- {e} epoch{'s' * (e > 1)}: {grid['grid'][str(e)]['verdict']}" in md
    assert Path(grid["figure"]).is_file() and "budgets on" in result.output
    # A re-run trains nothing; a malformed list is a one-line error.
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    for e in (1, 2):
        steps = json.loads((runs / f"epochs-{e}" / "shapes-pipeline.json").read_text())["steps"]
        assert [s["step"] for s in steps if s["status"] == "ran"] == ["dataset", "compare", "arms"]
    bad = CliRunner().invoke(app, [*args[:-1], "1,x"])
    assert bad.exit_code != 0 and "--epochs '1,x'" in bad.output
