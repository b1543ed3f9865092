"""Bad datasets: each gives one line naming the file or folder (exit code 2 through the CLI), and
the dataset folder is never modified."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.data import load_samples, scan_dataset, warn_skipped
from core.errors import UserError

TINY = ["--image-size", "32", "--width", "0.0625", "--batch-size", "16", "--epochs", "1",
        "--device", "cpu", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, make_dataset: Callable[..., Path]) -> Path:
    return make_dataset(tmp_path_factory.mktemp("pristine") / "data", "shapes", 6, 2)


@pytest.fixture
def dataset(pristine: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "data"))


def _train(data: Path, runs: Path, *extra: str) -> tuple[int, str]:
    from cli import app

    result = CliRunner().invoke(
        app, ["train", "--data", str(data), "--runs-dir", str(runs), "--name", "r", *TINY, *extra]
    )
    return result.exit_code, result.output


def _error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]


def _break_two_images(root: Path) -> tuple[Path, Path]:
    garbage = root / "train" / "circle" / "000.png"
    garbage.write_bytes(b"this is not a png")
    empty = root / "train" / "square" / "001.png"
    empty.write_bytes(b"")
    return garbage, empty


def test_unreadable_and_empty_images_are_skipped_with_a_warning(
    dataset: Path, tmp_path: Path, tree_digest: Callable[[Path], str]
) -> None:
    garbage, empty = _break_two_images(dataset)
    index = scan_dataset(dataset)
    tensors = load_samples(index.train, index.class_names, 32)
    assert len(tensors) == 16 and {p for p, _ in tensors.skipped} == {str(garbage), str(empty)}
    assert dict(tensors.skipped)[str(empty)] == "zero-byte file"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_skipped(tensors)
    assert len(caught) == 1 and str(garbage) in str(caught[0].message)

    before = tree_digest(dataset)
    code, output = _train(dataset, tmp_path / "runs")
    assert code == 0, output
    assert "warning: skipped 2 unreadable image(s)" in output
    assert str(garbage) in output and str(empty) in output
    assert tree_digest(dataset) == before


def test_strict_turns_unreadable_images_into_an_error(
    dataset: Path, tmp_path: Path, tree_digest: Callable[[Path], str]
) -> None:
    garbage, _ = _break_two_images(dataset)
    index = scan_dataset(dataset)
    with pytest.raises(UserError, match="and 1 more"):
        load_samples(index.train, index.class_names, 32, strict=True)
    before = tree_digest(dataset)
    code, output = _train(dataset, tmp_path / "runs", "--strict")
    assert code == 2
    assert str(garbage) in _error_line(output) and "--strict" in _error_line(output)
    assert tree_digest(dataset) == before
    assert not (tmp_path / "runs" / "r").exists()


def _empty_class(root: Path) -> Path:
    folder = root / "train" / "circle"
    for image in folder.iterdir():
        image.unlink()
    (folder / "notes.txt").write_text("no images here")
    return folder


def _differing_classes(root: Path) -> Path:
    (root / "test" / "square").rename(root / "test" / "rectangle")
    return root


def _no_train(root: Path) -> Path:
    shutil.rmtree(root / "train")
    return root / "train"


def _no_test(root: Path) -> Path:
    shutil.rmtree(root / "test")
    return root / "test"


def _no_class_folders(root: Path) -> Path:
    for folder in (root / "train").iterdir():
        shutil.rmtree(folder)
    return root / "train"


def _loose_images(root: Path) -> Path:
    for image in (root / "train" / "circle").iterdir():
        image.rename(root / "train" / f"loose-{image.name}")
    for name in ("circle", "square", "triangle"):
        shutil.rmtree(root / "train" / name, ignore_errors=True)
    return root / "train"


def _all_unreadable(root: Path) -> Path:
    for image in (root / "train").rglob("*.png"):
        image.write_bytes(b"")
    return root / "train"


def _class_unreadable(root: Path) -> Path:
    for image in (root / "train" / "triangle").iterdir():
        image.write_bytes(b"GIF89a broken")
    return root / "train" / "triangle"


def _missing_root(root: Path) -> Path:
    return root / "nowhere"


@pytest.mark.parametrize(
    ("breaker", "expect"),
    [
        (_empty_class, "class folder has no images"),
        (_differing_classes, "only in train: ['square']; only in test: ['rectangle']"),
        (_no_train, "missing"),
        (_no_test, "missing"),
        (_no_class_folders, "no class sub-folders"),
        (_loose_images, "move them into <class>/ sub-folders"),
        (_all_unreadable, "no readable images among 18 files"),
        (_class_unreadable, "class 'triangle' has no readable images left"),
        (_missing_root, "dataset folder not found"),
    ],
)
def test_bad_dataset_is_a_one_line_error_naming_it(
    dataset: Path,
    tmp_path: Path,
    breaker: Callable[[Path], Path],
    expect: str,
    tree_digest: Callable[[Path], str],
) -> None:
    named = breaker(dataset)
    before = tree_digest(dataset)
    data = named if breaker is _missing_root else dataset
    code, output = _train(data, tmp_path / "runs")
    assert code == 2, output
    line = _error_line(output)
    assert expect in line and str(named) in line
    assert tree_digest(dataset) == before
    assert not (tmp_path / "runs" / "r").exists()


def test_loose_images_beside_class_folders_are_ignored_with_a_warning(
    make_dataset: Callable[..., Path], tmp_path: Path
) -> None:
    data = make_dataset(tmp_path / "d", "shapes", train_per_class=3, test_per_class=2)
    before = scan_dataset(data)
    stray = data / "train" / "stray.png"
    shutil.copy(before.train[0].path, stray)
    with pytest.warns(
        UserWarning, match=r"train: 1 image\(s\) lie outside the class folders .* stray\.png"
    ):
        after = scan_dataset(data)
    assert [s.path for s in after.train] == [s.path for s in before.train]
