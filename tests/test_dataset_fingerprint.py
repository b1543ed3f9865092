"""A study refuses to resume on a dataset whose images changed since it started."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from core.errors import UserError
from study.pipeline.fingerprint import check_dataset, dataset_fingerprint


def test_a_changed_dataset_stops_a_resumed_study_in_one_line(
    make_dataset: Callable[..., Path], tmp_path: Path
) -> None:
    data = make_dataset(tmp_path / "d", "shapes", train_per_class=4, test_per_class=2)
    runs = tmp_path / "runs"
    runs.mkdir()
    first = check_dataset(data, runs, "d-")
    assert (runs / "d-dataset.json").is_file() and first["train"] == 12 and first["test"] == 6
    assert check_dataset(data, runs, "d-") == first  # unchanged: goes on
    train = sorted((data / "train").rglob("*.png"))
    changes: list[Callable[[], object]] = [
        lambda: shutil.copy(train[1], train[0]),  # a file's content
        lambda: train[2].rename(train[2].with_name("renamed.png")),  # a name (the split's order)
        lambda: shutil.move(train[3], data / "train" / train[-1].parent.name / "moved.png"),
    ]  # ... and a file moved to another class
    for change in changes:
        before = dataset_fingerprint(data)
        change()
        with pytest.raises(UserError, match=r"its images changed since this study's runs"):
            check_dataset(data, runs, "d-")
        assert dataset_fingerprint(data) != before
    (runs / "d-dataset.json").unlink()
    assert check_dataset(data, runs, "d-")["train"] == 12  # recorded afresh
