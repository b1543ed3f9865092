"""Grad-CAM: maps of every cheap method are image-sized, finite, in [0, 1] and not constant;
Score-CAM on one tiny image; the faithfulness number; overlays; `cli gradcam` end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from classify.checkpoint import load_classifier
from classify.explain.cams import CamOptions, class_targets, compute_cams
from classify.explain.faithfulness import cam_faithfulness
from classify.explain.gradcam_run import render_cams
from classify.explain.overlays import display_scale, overlay
from classify.explain.selection import select_per_class
from core.errors import UserError
from core.evaldir import read_metrics, update_metrics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLASS_NAMES = ["boot", "sandal", "sneaker"]  # tiny_run's classes (conftest's "halves" pattern)


@pytest.fixture(scope="module")
def loaded(tiny_run):
    return load_classifier("tiny", "best", tiny_run[0], device="cpu")


@pytest.fixture(scope="module")
def batch(toy_images):
    images, labels = toy_images("halves", 4, seed=11)
    return images, labels.tolist()


def _check_maps(cams: np.ndarray, n: int) -> None:
    assert cams.shape == (n, 32, 32) and cams.dtype == np.float32
    assert np.isfinite(cams).all()
    assert cams.min() >= 0.0 and cams.max() <= 1.0
    assert all(cam.std() > 1e-4 for cam in cams), "a constant map"


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "hirescam", "eigencam"])
def test_cam_maps_are_image_sized_finite_unit_range_and_not_constant(loaded, batch, method):
    images, labels = batch
    cams = compute_cams(loaded, images, labels, CamOptions(method=method, batch_size=3))
    _check_maps(cams, len(labels))
    # hooks are released: nothing left on the target layer
    layer = loaded.model.cam_target_layers()[0]
    assert not layer._forward_hooks


def test_aug_and_eigen_smooth_still_give_valid_maps(loaded, batch):
    images, labels = batch
    cams = compute_cams(
        loaded,
        images[:1],
        labels[:1],
        CamOptions(method="gradcam", aug_smooth=True, eigen_smooth=True),
    )
    _check_maps(cams, 1)


def test_scorecam_on_one_tiny_image(loaded, batch):
    images, labels = batch
    cams = compute_cams(
        loaded, images[:1], labels[:1], CamOptions(method="scorecam", batch_size=64)
    )
    _check_maps(cams, 1)


def test_maps_depend_on_the_target_class(loaded, batch):
    images, _ = batch
    a = compute_cams(loaded, images[:1], [0])
    b = compute_cams(loaded, images[:1], [1])
    assert not np.allclose(a, b)


@pytest.mark.parametrize("metric", ["road", "confidence"])
def test_faithfulness_is_finite_and_reproducible(loaded, batch, metric):
    images, labels = batch
    options = CamOptions(method="gradcam", metric=metric, seed=3)
    first = cam_faithfulness(loaded, images, labels, "gradcam", options=options)
    second = cam_faithfulness(loaded, images, labels, "gradcam", options=options)
    assert np.isfinite(first["value"]) and first["n_images"] == len(labels)
    assert -1.0 <= first["value"] <= 1.0
    assert first["value"] == pytest.approx(second["value"])
    assert first["higher_is_better"] is True and first["method"] == "gradcam"
    assert first["aug_smooth"] is False and first["checkpoint"] == "best"


def test_road_ranks_the_real_map_above_its_inverse(loaded, batch):
    """ROAD sanity check: removing what Grad-CAM calls relevant must hurt more than removing
    what it calls irrelevant, so the inverted map scores lower."""
    images, labels = batch
    cams = compute_cams(loaded, images, labels)
    real = cam_faithfulness(
        loaded, images, labels, "gradcam", cams=cams, options=CamOptions(target="true")
    )
    inverted = cam_faithfulness(
        loaded, images, labels, "gradcam", cams=1.0 - cams, options=CamOptions(target="true")
    )
    assert real["value"] > inverted["value"]


def test_targets_and_options_errors(loaded):
    probs = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]])
    assert class_targets(probs, None, "predicted") == [1, 0]
    assert class_targets(probs, [2, 2], "true") == [2, 2]
    with pytest.raises(UserError, match="--target true"):
        class_targets(probs, None, "true")
    with pytest.raises(UserError, match="--cam-method 'nope'"):
        compute_cams(
            loaded, torch.zeros(1, 3, 32, 32, dtype=torch.uint8), [0], CamOptions(method="nope")
        )


def test_overlay_and_display_scale(batch):
    images, _ = batch
    assert display_scale(32) == 4 and display_scale(28) == 5 and display_scale(256) == 1
    cam = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    big, blended = overlay(images[0], cam)
    assert big.shape == blended.shape == (128, 128, 3)
    assert big.dtype == blended.dtype == np.uint8
    np.testing.assert_array_equal(big[::4, ::4], images[0].permute(1, 2, 0).numpy())


def test_select_per_class_is_seeded():
    labels = [0] * 6 + [1] * 2 + [2] * 5
    chosen = select_per_class(labels, 3, per_class=3, seed=0)
    assert [len(c) for c in chosen] == [3, 2, 3]
    assert all(labels[i] == c for c, row in enumerate(chosen) for i in row)
    assert chosen == select_per_class(labels, 3, per_class=3, seed=0)
    assert any(select_per_class(labels, 3, 3, seed=s) != chosen for s in range(1, 6))


def test_render_cams_with_unknown_labels(loaded, batch, tmp_path):
    images, _ = batch
    report = render_cams(
        loaded, images[:2], None, [[0], [1]], None, tmp_path / "g.png", names=["a.png", "b.png"]
    )
    assert (tmp_path / "g.png").read_bytes()[:8] == PNG_MAGIC
    assert [t.true for row in report.tiles for t in row] == [None, None]
    assert report.tiles[0][0].image.shape == (128, 128, 3)


def test_cli_gradcam_per_class_and_image_files(private_run, tmp_path):
    from cli import app

    runs_dir, data = private_run
    run_dir = runs_dir / "tiny"
    update_metrics(run_dir, {"accuracy": 0.5})  # an evaluation result that must survive
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["gradcam", "tiny", "--cam-per-class", "2", "--runs-dir", str(runs_dir), "--device", "cpu"],
    )
    assert result.exit_code == 0, result.output
    assert (run_dir / "eval" / "gradcam_gradcam.png").read_bytes()[:8] == PNG_MAGIC
    assert "higher is better" in result.output
    result = runner.invoke(
        app,
        [
            "gradcam",
            "tiny",
            "--cam-per-class",
            "1",
            "--cam-method",
            "eigencam",
            "--metric",
            "confidence",
            "--runs-dir",
            str(runs_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = read_metrics(run_dir)
    assert metrics["accuracy"] == 0.5
    assert set(metrics["cam"]) == {"gradcam", "eigencam"}
    entry = metrics["cam"]["gradcam"]
    assert entry["n_images"] == 2 * len(CLASS_NAMES) and np.isfinite(entry["value"])
    assert entry["metric"].startswith("ROAD") and entry["aug_smooth"] is False
    assert metrics["cam"]["eigencam"]["metric"] == "CamMultImageConfidenceChange"

    out = tmp_path / "mine.png"
    result = runner.invoke(
        app,
        [
            "gradcam",
            "tiny",
            str(data / "test/boot/boot_01.png"),
            "--cam-method",
            "hirescam",
            "--out",
            str(out),
            "--runs-dir",
            str(runs_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert "hirescam" not in read_metrics(run_dir)["cam"]  # image files are not the test set
