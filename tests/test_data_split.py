"""`cli data split`: a one-folder-per-class image set made into train/ + test/, stratified,
seeded, byte-identical images kept on one side, the source only read; and a tiny `cli pipeline`
end to end on the result (scikit-learn's real 8 x 8 digits when it is installed)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from core.errors import UserError
from core.folder_split import (
    DUPLICATES_FILE,
    SPLIT_RECORD,
    FolderSplitConfig,
    read_folder_split,
    split_folder,
)


def _split(source: Path, out: Path, *extra: str) -> tuple[int, str]:
    from cli import app

    result = CliRunner().invoke(
        app, ["data", "split", str(source), "--out", str(out), "--no-progress", *extra]
    )
    return result.exit_code, result.output


def _error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]


def _files(out: Path, part: str) -> dict[str, list[str]]:
    return {
        c.name: sorted(p.relative_to(c).as_posix() for p in c.rglob("*") if p.is_file())
        for c in sorted((out / part).iterdir())
    }


@pytest.fixture
def flat(make_dataset: Callable[..., Path], tmp_path: Path) -> Path:
    """SOURCE/<class>/*.png with 10 circles, 7 squares and 3 triangles (all different images)."""
    made = make_dataset(tmp_path / "made", "shapes", 10, 0)
    for cls, n in (("square", 7), ("triangle", 3)):
        for extra in sorted((made / "train" / cls).iterdir())[n:]:
            extra.unlink()
    return Path(shutil.move(made / "train", tmp_path / "flat"))


def test_each_class_is_split_on_its_own(flat: Path, tmp_path: Path) -> None:
    code, output = _split(flat, tmp_path / "out")
    assert code == 0, output
    out = tmp_path / "out"
    train, test = _files(out, "train"), _files(out, "test")
    # round(n * 0.2), at least one image on each side.
    assert {c: len(f) for c, f in test.items()} == {"circle": 2, "square": 1, "triangle": 1}
    assert {c: len(f) for c, f in train.items()} == {"circle": 8, "square": 6, "triangle": 2}
    for cls in ("circle", "square", "triangle"):
        source = sorted(p.name for p in (flat / cls).iterdir())
        assert sorted(train[cls] + test[cls]) == source  # each file once, names kept
        for name in test[cls]:
            assert (out / "test" / cls / name).read_bytes() == (flat / cls / name).read_bytes()
    record = read_folder_split(out)
    assert record.counts["test"] == {"circle": 2, "square": 1, "triangle": 1}
    assert (record.seed, record.test_fraction) == (0, 0.2)
    assert record.source == str(flat.resolve()) and record.skipped == []
    assert record.links + record.copies == 20
    assert "no byte-identical images" in output
    assert not (out / DUPLICATES_FILE).exists()
    assert not list(tmp_path.glob(".*partial"))


def test_the_split_depends_on_the_seed_alone(
    flat: Path, tmp_path: Path, make_dataset: Callable[..., Path]
) -> None:
    def test_files(seed: int, source: Path = flat) -> dict[str, list[str]]:
        out = tmp_path / f"out-{source.name}-{seed}"
        cfg = FolderSplitConfig(str(source), str(out), test_fraction=0.5, seed=seed)
        split_folder(cfg, overwrite=True)
        return _files(out, "test")

    assert test_files(0) == test_files(0)
    assert test_files(0) != test_files(1)
    # A class's split does not move when another class is added.
    more = Path(shutil.copytree(flat, tmp_path / "more"))
    disc = make_dataset(tmp_path / "extra", "shapes", 5, 0, classes=["disc"], seed=99)
    shutil.move(disc / "train" / "disc", more / "disc")
    assert {c: f for c, f in test_files(0, more).items() if c != "disc"} == test_files(0)


@pytest.mark.parametrize("mode", ["--link", "--copy"])
def test_the_source_is_only_read(
    flat: Path, tmp_path: Path, tree_digest: Callable[[Path], str], mode: str
) -> None:
    before = tree_digest(flat)
    mtimes = {p: p.stat().st_mtime_ns for p in flat.rglob("*")}
    code, output = _split(flat, tmp_path / "out", mode)
    assert code == 0, output
    assert tree_digest(flat) == before
    assert {p: p.stat().st_mtime_ns for p in flat.rglob("*")} == mtimes
    record = json.loads((tmp_path / "out" / SPLIT_RECORD).read_text())
    assert record["copies" if mode == "--copy" else "links"] == 20
    copy = next((tmp_path / "out" / "train" / "circle").iterdir())
    linked = copy.stat().st_ino == (flat / "circle" / copy.name).stat().st_ino
    assert linked == (mode == "--link")


def test_byte_identical_images_stay_on_one_side(flat: Path, tmp_path: Path) -> None:
    for copy in ("copy-a.png", "copy-b.png"):
        shutil.copyfile(flat / "circle" / "000.png", flat / "circle" / copy)
    shutil.copyfile(flat / "square" / "003.png", flat / "triangle" / "same-as-square.png")
    for seed in range(8):
        out = tmp_path / f"out{seed}"
        code, output = _split(flat, out, "--seed", str(seed), "--test-fraction", "0.4")
        assert code == 0, output
        sides = {
            part
            for part in ("train", "test")
            for name in ("000.png", "copy-a.png", "copy-b.png")
            if (out / part / "circle" / name).exists()
        }
        assert len(sides) == 1, seed  # the three copies went to one side together
        # Identical files under two classes contradict each other: both stay in train.
        assert (out / "train" / "square" / "003.png").exists()
        assert (out / "train" / "triangle" / "same-as-square.png").exists()
        record = json.loads((out / SPLIT_RECORD).read_text())
        assert (record["duplicate_groups"], record["duplicate_files"]) == (1, 3)
        assert (record["label_conflicts"], record["across_split"]) == (1, 0)
    assert "3 files in 1 group(s)" in " ".join(output.split())
    listing = (out / DUPLICATES_FILE).read_text()
    assert "circle/copy-b.png" in listing and "triangle/same-as-square.png" in listing


def test_unreadable_images_are_skipped_or_refused(flat: Path, tmp_path: Path) -> None:
    (flat / "circle" / "000.png").write_bytes(b"")
    (flat / "square" / "000.png").write_bytes(b"not a png")
    code, output = _split(flat, tmp_path / "out")
    assert code == 0, output
    assert "warning: skipped 2 unreadable image(s)" in output
    record = json.loads((tmp_path / "out" / SPLIT_RECORD).read_text())
    assert dict(record["skipped"])[str(flat / "circle" / "000.png")] == "zero-byte file"
    assert sum(record["counts"]["train"].values()) + sum(record["counts"]["test"].values()) == 18
    code, output = _split(flat, tmp_path / "strict", "--strict")
    assert code == 2 and "--strict" in _error_line(output)
    assert not (tmp_path / "strict").exists()


def _one_image_class(flat: Path, tmp_path: Path) -> tuple[Path, Path, str]:
    (flat / "lonely").mkdir()
    shutil.copyfile(flat / "circle" / "001.png", flat / "lonely" / "a.png")
    (flat / "circle" / "001.png").unlink()
    return flat, tmp_path / "out", "class 'lonely' has 1 readable image"


def _two_identical(flat: Path, tmp_path: Path) -> tuple[Path, Path, str]:
    shutil.copyfile(flat / "triangle" / "000.png", flat / "triangle" / "001.png")
    (flat / "triangle" / "002.png").unlink()
    return flat, tmp_path / "out", "class 'triangle' has 2 readable images but 1 distinct"


def _inside_source(flat: Path, tmp_path: Path) -> tuple[Path, Path, str]:
    return flat, flat / "circle" / "out", "lies inside the source"


def _the_source(flat: Path, tmp_path: Path) -> tuple[Path, Path, str]:
    return flat, flat, "lies inside the source"


def _around_source(flat: Path, tmp_path: Path) -> tuple[Path, Path, str]:
    return flat, tmp_path, "holds the source"


def _not_empty(flat: Path, tmp_path: Path) -> tuple[Path, Path, str]:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    return flat, tmp_path / "out", "exists and is not empty; pass --overwrite"


def _already_split(flat: Path, tmp_path: Path) -> tuple[Path, Path, str]:
    split_folder(FolderSplitConfig(str(flat), str(tmp_path / "done")))
    return tmp_path / "done", tmp_path / "out", "has train/ and test/ already"


@pytest.mark.parametrize(
    "make",
    [_one_image_class, _two_identical, _inside_source, _the_source, _around_source, _not_empty,
     _already_split],
    ids=lambda f: f.__name__.strip("_"),
)  # fmt: skip
def test_refusals_are_one_line_and_write_nothing(
    flat: Path,
    tmp_path: Path,
    tree_digest: Callable[[Path], str],
    make: Callable[[Path, Path], tuple[Path, Path, str]],
) -> None:
    source, out, message = make(flat, tmp_path)
    before = tree_digest(tmp_path)
    code, output = _split(source, out)
    assert code == 2 and message in _error_line(output), output
    assert tree_digest(tmp_path) == before


def test_overwrite_replaces_only_an_earlier_split(flat: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _split(flat, out)[0] == 0
    code, output = _split(flat, out, "--overwrite", "--test-fraction", "0.5")
    assert code == 0, output
    assert json.loads((out / SPLIT_RECORD).read_text())["test_fraction"] == 0.5
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    code, output = _split(flat, tmp_path / "other", "--overwrite")
    assert code == 2 and "not made by `cli data split`" in _error_line(output)
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"
    with pytest.raises(UserError, match="--test-fraction 1.0"):
        split_folder(FolderSplitConfig(str(flat), str(tmp_path / "x"), test_fraction=1.0))


# --- end to end: split, then the pipeline on the result --------------------------------------------

DIGITS = (0, 1, 7)  # three real digit classes
PER_DIGIT = 14
PIPELINE = ["--epochs", "1", "--width", "0.0625", "--image-size", "32", "--gan-iterations", "4",
            "--gan-width", "8", "--per-class", "6", "--score-per-class", "6",
            "--cam-per-class", "1", "--models", "resnet50", "--no-cas",
            "--device", "cpu"]  # fmt: skip


def write_digits(root: Path, make_dataset: Callable[..., Path]) -> Path:
    """ROOT/digits/<digit>/*.png: scikit-learn's real 8 x 8 handwritten digits (as 16 px grey
    PNGs), or, without scikit-learn, the toy generator's shapes."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        made = make_dataset(root / "made", "shapes", PER_DIGIT, 0)
        return Path(shutil.move(made / "train", root / "digits"))
    digits = load_digits()
    for digit in DIGITS:
        folder = root / "digits" / f"digit-{digit}"
        folder.mkdir(parents=True)
        for index in np.flatnonzero(digits.target == digit)[:PER_DIGIT]:
            pixels = (digits.images[index] * (255 / 16)).round().astype(np.uint8)
            image = Image.fromarray(pixels, mode="L").resize((16, 16), Image.NEAREST)
            image.save(folder / f"{index:04d}.png")
    return root / "digits"


@pytest.fixture
def _standin_features() -> Iterator[None]:
    from commands.configs import FEATURES_ENV

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(FEATURES_ENV, "random-conv")
        yield


@pytest.mark.slow
@pytest.mark.usefixtures("_standin_features", "private_cache")
def test_split_then_pipeline_end_to_end(
    tmp_path: Path, tree_digest: Callable[[Path], str], make_dataset: Callable[..., Path]
) -> None:
    from cli import app

    digits = write_digits(tmp_path, make_dataset)
    before = tree_digest(digits)
    code, output = _split(digits, tmp_path / "split", "--test-fraction", "0.25")
    assert code == 0, output
    record = json.loads((tmp_path / "split" / SPLIT_RECORD).read_text())
    assert all(n in (3, 4) for n in record["counts"]["test"].values()), record["counts"]
    data = tmp_path / "split"
    split_before = tree_digest(data)
    result = CliRunner().invoke(app, [
        "pipeline", "--data", str(data), "--runs-dir", str(tmp_path / "runs"),
        "--synthetic-dir", str(tmp_path / "synthetic"), "--reports-dir", str(tmp_path / "reports"),
        "--data-dir", str(tmp_path / "data"), *PIPELINE,
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "runs" / "split-study.json").read_text())
    assert Path(summary["report"]).is_file()
    metrics = json.loads(
        (tmp_path / "runs" / summary["baseline_runs"][0] / "eval" / "metrics.json").read_text()
    )
    assert 0.0 <= metrics["accuracy"] <= 1.0
    manifest = json.loads((tmp_path / "synthetic" / "split-gan" / "manifest.json").read_text())
    assert sorted(manifest["counts"]) == record["classes"]
    assert tree_digest(digits) == before and tree_digest(data) == split_before
