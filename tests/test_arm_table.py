"""The arms table (study.pipeline.arms.arm_table) on hand-made runs: runs pair with real's by
training seed, a missing or repeated seed is an error naming the runs, the headline interval
counts both seeds and test images, and the verdict texts with three seeds and with one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from classify.evaluation.evaluate import Predictions
from core.errors import UserError
from study.compare.runs import RunResult

CLASSES = ["a", "b"]
N = 2000


def _run(name: str, seed: int, correct: np.ndarray) -> RunResult:
    true = np.arange(N) % 2
    predicted = np.where(correct, true, 1 - true)
    predictions = Predictions(
        [f"test/{i:04d}.png" for i in range(N)], true, predicted, np.eye(2)[predicted], CLASSES
    )
    history = [{"epoch": 1, "val_acc": 0.5 + 0.01 * seed, "train_loss": 1.0}]
    config = {"train": {"seed": seed, "epochs": 1}}
    return RunResult(name, Path(name), {"checkpoint": "best"}, predictions, config, history)


def _pair(seed: int, gained: int, lost: int) -> tuple[RunResult, RunResult]:
    """real and real+gan at one seed: both right on 80% of the images; the arm alone right on
    ``gained`` of the others and alone wrong on ``lost`` (one-way discordance per seed)."""
    a = np.roll(np.arange(N) < int(0.8 * N), 300 * seed)
    b = a.copy()
    b[np.flatnonzero(~a)[:gained]] = True
    b[np.flatnonzero(a)[:lost]] = False
    return _run(f"real-s{seed}", seed, a), _run(f"gan-s{seed}", seed, b)


def _runs(spec: dict[int, tuple[int, int]]) -> dict[str, list[RunResult]]:
    pairs = [_pair(seed, *change) for seed, change in spec.items()]
    return {"real": [p[0] for p in pairs], "real+gan": [p[1] for p in pairs]}


def test_seeds_disagreeing_in_sign_give_not_established() -> None:
    from study.pipeline.arms import arm_table

    runs = _runs({0: (100, 0), 1: (0, 100), 2: (80, 0)})  # +5, -5, +4 points
    runs["real+gan"] = runs["real+gan"][::-1]  # given in another order: paired by seed
    table = arm_table(runs, resamples=500)
    row = table["arms"]["real+gan"]
    assert row["seeds"] == [0, 1, 2] and row["runs"] == ["gan-s0", "gan-s1", "gan-s2"]
    assert [round(100 * s["delta"]["delta"], 6) for s in row["per_seed"]] == [5.0, -5.0, 4.0]
    assert all(s["delta"]["low"] > 0 or s["delta"]["high"] < 0 for s in row["per_seed"])
    assert row["test_only"]["low"] > 0  # test-set noise only would call it significant
    interval = row["interval"]
    assert interval["low"] < 0 < interval["high"] and interval["p_holm"] == interval["p_value"]
    assert row["verdict"] == "not established"
    # real+gan has the higher validation accuracy (0.5 + 0.01 seed for both arms: a tie -> real)
    assert table["verdict"] == (
        "Best arm by validation accuracy (51.00%, mean over seeds): real only; no arm is chosen "
        "over it (test 80.00%)."
    )
    for run in runs["real+gan"]:
        run.history[0]["val_acc"] += 0.1
    table = arm_table(runs, resamples=500)
    assert table["verdict"] == (
        "Best arm by validation accuracy (61.00%, mean over seeds): real+gan; on test 81.33% vs "
        "80.00% for real only. That real+gan differs from real only is not established: +1.33 "
        "accuracy points, 95% CI -12.40 to +15.07 over 3 seeds and the test images "
        "(Holm-adjusted p 0.717); the interval covers 0."
    )
    assert table["cam_choice"] == {"arm": "real+gan", "why": "the best arm by validation accuracy"}


def test_three_seeds_agreeing_give_a_verdict() -> None:
    from study.pipeline.arms import arm_table

    runs = _runs({0: (100, 0), 1: (110, 0), 2: (90, 0)})  # +5, +5.5, +4.5 points
    row = arm_table(runs, resamples=500)["arms"]["real+gan"]
    assert row["verdict"] == "better" and row["interval"]["low"] > 0
    # By hand: deltas 0.05, 0.055, 0.045 -> mean 0.05, sd 0.005; t(0.975, 2) 4.303.
    assert row["interval"]["delta"] == pytest.approx(0.05)
    assert row["interval"]["high"] - 0.05 >= 4.303 * 0.005 / 3**0.5 - 1e-9


def test_one_seed_says_nothing_about_the_method() -> None:
    from study.pipeline.arms import arm_table

    runs = _runs({0: (100, 0)})
    for run in runs["real+gan"]:
        run.history[0]["val_acc"] += 0.1
    table = arm_table(runs, resamples=500)
    row = table["arms"]["real+gan"]
    assert row["interval"] is None and row["verdict"] is None and row["std"] is None
    assert table["verdict"].startswith(
        "Best arm by validation accuracy (60.00%, mean over seeds): real+gan; on test 85.00% vs "
        "80.00% for real only. These trained models differ on this test set: real+gan +5.00 "
        "accuracy points against real only (95% CI +"
    )
    assert table["verdict"].endswith(
        "test-set noise only). One seed cannot tell whether the method does: rerun the same cli "
        "pipeline command with --seeds 3 (finished runs are kept)."
    )


def test_a_missing_or_repeated_seed_is_an_error_naming_the_runs() -> None:
    from study.pipeline.arms import arm_table

    runs = _runs({0: (100, 0), 1: (0, 100), 2: (80, 0)})
    runs["real"] = runs["real"][:2]  # real has seeds 0, 1; the arm 0, 1, 2
    with pytest.raises(UserError) as error:
        arm_table(runs, resamples=100)
    assert str(error.value) == (
        "runs pair by training seed: real+gan has gan-s2 (seed 2) but real has no run of that "
        "seed (its runs: real-s0 (seed 0), real-s1 (seed 1))"
    )
    runs = _runs({0: (100, 0), 1: (0, 100)})
    runs["real+gan"][1] = _pair(0, 5, 0)[1]  # seed 0 twice
    with pytest.raises(UserError, match="real\\+gan: runs gan-s0 and gan-s0 have the same"):
        arm_table(runs, resamples=100)


def test_the_arms_markdown_is_the_reports_rendering() -> None:
    from study.pipeline.arms import arm_table
    from study.report.arms import TITLE, arm_markdown, arms_blocks
    from study.report.markdown import render_markdown

    table = arm_table(_runs({0: (100, 0), 1: (110, 0), 2: (90, 0)}), resamples=200)
    text = arm_markdown(table)
    assert text == render_markdown(TITLE, arms_blocks({"arms": table})[1:])
    assert "| real+gan | 85.00 ± 0.50 | +5.00 (" in text and "| better |" in text
    assert table["verdict"] in text and "best epoch by validation accuracy" in text


def test_a_synthetic_set_that_saw_the_validation_images_is_named_in_the_report() -> None:
    from study.pipeline.arms import arm_table
    from study.report.arms import arm_markdown

    runs = _runs({0: (100, 0), 1: (110, 0), 2: (90, 0)})
    held_out = {"split": {"held_out": True, "recorded": True, "validation_seen": 0}}
    assert "use-all-train" not in arm_markdown(arm_table(runs, resamples=100))
    for run in runs["real+gan"]:
        run.config["synthetic"] = held_out
    assert "use-all-train" not in arm_markdown(arm_table(runs, resamples=100))
    runs["real+gan"][1].config["synthetic"] = {
        "split": {"held_out": False, "recorded": True, "validation_seen": 12}
    }
    runs["real+gan"][2].config["synthetic"] = {"split": {"recorded": False}}
    text = arm_markdown(arm_table(runs, resamples=100))
    assert "`gan-s1`: its synthetic set comes from a generator trained on every" in text
    assert "(`cli gan-train --use-all-train`), 12 of this run's validation images" in text
    assert "`gan-s2`: its synthetic set records no split" in text and "`gan-s0`" not in text
