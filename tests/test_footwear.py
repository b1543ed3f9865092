"""`cli data footwear`: the embedded dataset writer, on fake IDX files and on the real ones."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from core.data import scan_dataset
from core.footwear import IDX_FILES, FootwearConfig, find_idx_dir, read_idx, write_footwear


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture()
def fake_idx(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "idx"
    folder.mkdir()
    for split, n in (("train", 200), ("test", 60)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 256, size=(n, 28, 28))
        images[:, 0, 0] = labels  # so a test can tell which label an image came from
        _write_idx(folder / IDX_FILES[f"{split}_images"], images)
        _write_idx(folder / IDX_FILES[f"{split}_labels"], labels)
    return folder


def test_read_idx_roundtrip(fake_idx: Path) -> None:
    labels = read_idx(fake_idx / IDX_FILES["train_labels"])
    assert labels.shape == (200,) and labels[:3].tolist() == [0, 1, 2]
    assert read_idx(fake_idx / IDX_FILES["train_images"]).shape == (200, 28, 28)


def test_write_footwear_layout_and_determinism(fake_idx: Path, tmp_path: Path) -> None:
    cfg = FootwearConfig(out=str(tmp_path / "fw"), train_per_class=7, seed=3, idx_dir=str(fake_idx))
    out = write_footwear(cfg)
    index = scan_dataset(out)
    assert index.class_names == ["ankle_boot", "sandal", "sneaker"]
    assert len(index.train) == 21 and len(index.test) == 18  # 6 of each footwear label in 60 test
    expected = {"ankle_boot": 9, "sandal": 5, "sneaker": 7}
    for sample in index.train + index.test:
        pixel = np.asarray(Image.open(sample.path))[0, 0]
        assert pixel == expected[index.class_names[sample.label]]
    names = sorted(p.name for p in (out / "train").rglob("*.png"))
    again = write_footwear(
        FootwearConfig(str(tmp_path / "fw2"), train_per_class=7, seed=3, idx_dir=str(fake_idx))
    )
    assert names == sorted(p.name for p in (again / "train").rglob("*.png"))
    # Same settings: kept as is; other settings: refused without --overwrite.
    assert write_footwear(cfg) == out
    from core.errors import UserError

    with pytest.raises(UserError, match="other settings"):
        write_footwear(FootwearConfig(cfg.out, train_per_class=5, seed=3, idx_dir=str(fake_idx)))


def test_missing_idx_files_explain_how_to_get_them(tmp_path: Path) -> None:
    from cli import app

    result = CliRunner().invoke(
        app, ["data", "footwear", "--out", str(tmp_path / "o"), "--idx-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "apt-get install dataset-fashion-mnist" in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_real_footwear_set(tmp_path: Path) -> None:
    try:
        find_idx_dir()
    except Exception:
        pytest.skip("Fashion-MNIST IDX files not installed (apt-get install dataset-fashion-mnist)")
    from cli import app

    out = tmp_path / "footwear"
    result = CliRunner().invoke(
        app, ["data", "footwear", "--out", str(out), "--train-per-class", "20"]
    )
    assert result.exit_code == 0, result.output
    index = scan_dataset(out)
    assert len(index.train) == 60 and len(index.test) == 3000


def test_other_fashion_mnist_classes_are_written_like_the_footwear(
    fake_idx: Path, tmp_path: Path
) -> None:
    from cli import app

    out = tmp_path / "other"
    args = ["data", "fashion-mnist", "--out", str(out), "--idx-dir", str(fake_idx)]
    result = CliRunner().invoke(app, [*args, "--train-per-class", "4"])
    assert result.exit_code == 0, result.output
    index = scan_dataset(out)
    names = ["bag", "coat", "dress", "pullover", "shirt", "trouser", "tshirt_top"]
    assert index.class_names == names
    assert len(index.train) == 7 * 4 and len(index.test) == 7 * 6
    labels = {"tshirt_top": 0, "trouser": 1, "pullover": 2, "dress": 3, "coat": 4, "shirt": 6,
              "bag": 8}  # fmt: skip
    for sample in index.train + index.test:
        assert np.asarray(Image.open(sample.path))[0, 0] == labels[names[sample.label]]
    picked = CliRunner().invoke(
        app, ["data", "fashion-mnist", "--classes", "bag,sandal", "--out", str(tmp_path / "two"),
              "--idx-dir", str(fake_idx), "--train-per-class", "2"],
    )  # fmt: skip
    assert picked.exit_code == 0, picked.output
    assert scan_dataset(tmp_path / "two").class_names == ["bag", "sandal"]
    for classes, needle in [("bag", "two or more"), ("bag,boot", "the classes are")]:
        bad = CliRunner().invoke(
            app, ["data", "fashion-mnist", "--classes", classes, "--out", str(tmp_path / "x")]
        )
        errors = [line for line in bad.output.splitlines() if line.startswith("error:")]
        assert bad.exit_code == 2 and len(errors) == 1 and needle in errors[0], bad.output
    again = CliRunner().invoke(app, [*args, "--train-per-class", "5"])
    assert again.exit_code == 2 and "classes=other, train_per_class=4" in again.output


def test_a_footwear_set_written_before_classes_existed_is_kept(
    fake_idx: Path, tmp_path: Path
) -> None:
    import json

    cfg = FootwearConfig(out=str(tmp_path / "fw"), train_per_class=3, idx_dir=str(fake_idx))
    out = write_footwear(cfg)
    marker = out / "footwear.json"
    old = {k: v for k, v in json.loads(marker.read_text()).items() if k != "classes"}
    marker.write_text(json.dumps(old))
    stamp = marker.stat().st_mtime_ns
    assert write_footwear(cfg) == out and marker.stat().st_mtime_ns == stamp
