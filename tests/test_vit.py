"""The ViT family: shapes, attention read through hooks, rollout, Grad-CAM on tokens, training,
resume, and the `attention` command."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from classify.explain.vit_attention import (
    AttentionRecorder,
    attention_modules,
    attention_rollout,
    cls_to_patches,
    fuse_heads,
    layer_map,
    record_attention,
    rollout_map,
    to_unit_maps,
)
from classify.models import ModelConfig, build_model, is_vit, model_names
from classify.models.profile import count_parameters
from classify.training.config import TrainConfig
from core.errors import UserError
from core.io import load_checkpoint, read_json

SMALL = dict(num_classes=3, image_size=16, width=0.25)


def _vit(depth: int = 2, heads: int = 2, **kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(name="vit-tiny", vit_depth=depth, vit_heads=heads, **{**SMALL, **kw})
    return build_model(cfg).eval()


def _no_hooks(model: torch.nn.Module) -> bool:
    return all(
        not m._forward_hooks and not m._forward_pre_hooks and not m._forward_hooks_with_kwargs
        for m in model.modules()
    )


# --- the model ---------------------------------------------------------------------------------


def test_registry_has_the_vits_beside_the_resnets() -> None:
    assert [n for n in model_names() if is_vit(n)] == ["vit-tiny", "vit-small", "vit-b16"]
    model = build_model(ModelConfig(name="vit-tiny", num_classes=10, image_size=32))
    assert model.grid == 8 and model.patch_size == 4  # auto: an 8 x 8 token grid
    assert model.hidden_dim == 192 and model.depth == 6 and model.num_heads == 3
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    narrow = build_model(ModelConfig(name="vit-tiny", image_size=32, width=0.25))
    assert narrow.hidden_dim == 48 and narrow.num_heads == 3  # width scales dim, heads kept
    assert count_parameters(narrow) < count_parameters(model) / 10


def test_patch_size_depth_and_heads_are_options() -> None:
    model = _vit(depth=3, heads=4, patch_size=8)
    assert model.grid == 2 and len(model.encoder.layers) == 3 and model.num_heads == 4
    assert model.hidden_dim % 4 == 0


def test_bad_vit_settings_are_one_line_errors() -> None:
    with pytest.raises(UserError, match="does not divide") as err:
        build_model(ModelConfig(name="vit-tiny", image_size=30, patch_size=4))
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match=">= 0"):
        build_model(ModelConfig(name="vit-tiny", image_size=32, vit_heads=-1))


def test_cam_reshape_transform_drops_the_class_token() -> None:
    model = _vit()
    tokens = torch.arange(2 * 17 * 5, dtype=torch.float32).reshape(2, 17, 5)  # 16 px / 4 = 4x4
    grid = model.cam_reshape_transform(tokens)
    assert grid.shape == (2, 5, 4, 4)
    assert torch.equal(grid[1, :, 2, 3], tokens[1, 1 + 2 * 4 + 3])  # row-major patches


# --- attention through hooks -------------------------------------------------------------------


@pytest.mark.parametrize(("depth", "heads"), [(1, 1), (3, 4)])
def test_attention_has_layers_heads_tokens_and_rows_sum_to_one(depth: int, heads: int) -> None:
    model = _vit(depth, heads)
    x = torch.randn(5, 3, 16, 16)
    logits, attention = record_attention(model, x)
    tokens = 1 + model.grid**2
    assert attention.shape == (5, depth, heads, tokens, tokens)
    assert torch.allclose(attention.sum(dim=-1), torch.ones(5, depth, heads, tokens), atol=1e-5)
    assert (attention >= 0).all()
    # Reading attention changes nothing about the prediction, and the hooks are gone afterwards.
    with torch.no_grad():
        assert torch.allclose(logits, model(x), atol=1e-5)
    assert _no_hooks(model)


def test_recorder_removes_its_hooks_even_on_error_and_does_not_leak_across_calls() -> None:
    model = _vit(depth=2)
    x = torch.randn(2, 3, 16, 16)
    with pytest.raises(RuntimeError, match="boom"), AttentionRecorder(model) as recorder:
        model(x)
        raise RuntimeError("boom")
    assert _no_hooks(model)
    assert len(recorder.weights) == 2
    first = record_attention(model, x)[1]
    second = record_attention(model, x)[1]
    assert torch.equal(first, second) and first.shape[1] == 2  # one entry per block, not doubled
    assert model.training is False


def test_recorder_keeps_training_mode_and_needs_attention_modules() -> None:
    model = _vit().train()
    record_attention(model, torch.randn(1, 3, 16, 16))
    assert model.training
    with pytest.raises(ValueError, match="MultiheadAttention"):
        AttentionRecorder(torch.nn.Linear(2, 2))
    assert len(attention_modules(model)) == 2


def test_head_fusion_and_class_token_maps() -> None:
    attention = torch.rand(2, 3, 4, 5, 5)
    assert torch.equal(fuse_heads(attention, "mean"), attention.mean(dim=2))
    assert torch.equal(fuse_heads(attention, "max"), attention.amax(dim=2))
    assert torch.equal(fuse_heads(attention, "min"), attention.amin(dim=2))
    with pytest.raises(ValueError, match="mean, max, min"):
        fuse_heads(attention, "median")
    maps = cls_to_patches(attention, 2)
    assert maps.shape == (2, 3, 4, 2, 2)
    assert torch.equal(maps[1, 2, 3].flatten(), attention[1, 2, 3, 0, 1:])
    assert layer_map(attention, 2, layer=-1).shape == (2, 2, 2)


# --- rollout -----------------------------------------------------------------------------------


def _stochastic(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(*shape, generator=g) * 3, dim=-1)


def test_rollout_by_hand() -> None:
    # One layer, one head, uniform attention over 3 tokens: (A + I) / 2, rows already sum to 1.
    uniform = torch.full((1, 1, 1, 3, 3), 1 / 3)
    expected = (torch.full((3, 3), 1 / 3) + torch.eye(3)) / 2
    assert torch.allclose(attention_rollout(uniform)[0], expected)
    # Two layers multiply, later layer on the left.
    a1, a2 = _stochastic(3, 3, seed=1), _stochastic(3, 3, seed=2)
    both = torch.stack([a1, a2])[None, :, None]  # 1 x 2 layers x 1 head x 3 x 3
    m1, m2 = (a1 + torch.eye(3)) / 2, (a2 + torch.eye(3)) / 2
    assert torch.allclose(attention_rollout(both)[0], m2 @ m1, atol=1e-6)
    # Attention that stays on each token leaves every token where it was.
    identity = torch.eye(4).expand(2, 3, 2, 4, 4)
    assert torch.allclose(attention_rollout(identity), torch.eye(4).expand(2, 4, 4))


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
@pytest.mark.parametrize("discard", [0.0, 0.5, 0.9])
def test_rollout_is_a_distribution_over_patches(fusion: str, discard: float) -> None:
    attention = _stochastic(3, 4, 2, 17, 17)
    rolled = attention_rollout(attention, fusion, discard)
    assert torch.allclose(rolled.sum(dim=-1), torch.ones(3, 17), atol=1e-5)
    assert (rolled >= 0).all()
    maps = rollout_map(attention, 4, fusion, discard)
    assert maps.shape == (3, 4, 4) and (maps >= 0).all()
    assert torch.allclose(maps.sum(dim=(1, 2)), torch.ones(3), atol=1e-5)
    with pytest.raises(ValueError, match="discard ratio"):
        attention_rollout(attention, fusion, 1.0)


def test_discard_ratio_zeroes_the_weakest_weights_but_keeps_the_class_token() -> None:
    attention = _stochastic(1, 1, 1, 5, 5)
    attention[0, 0, 0, 0, 0] = 1e-9  # the weakest entry is the class token's own
    sharp = attention_rollout(attention, discard_ratio=0.5)
    plain = attention_rollout(attention)
    assert not torch.allclose(sharp, plain)
    assert sharp[0, 0, 0] > 0  # (A + I) / 2 keeps the diagonal


def test_unit_maps_have_the_image_size_and_range() -> None:
    maps = to_unit_maps(torch.rand(3, 4, 4), 32)
    assert maps.shape == (3, 32, 32)
    assert torch.allclose(maps.amax(dim=(1, 2)), torch.ones(3))
    assert torch.allclose(maps.amin(dim=(1, 2)), torch.zeros(3))


# --- training, Grad-CAM and the command --------------------------------------------------------


@pytest.fixture(scope="module")
def halves(tmp_path_factory: pytest.TempPathFactory, make_dataset: Callable[..., Path]) -> Path:
    root = tmp_path_factory.mktemp("halves") / "data"
    return make_dataset(root, "halves", 40, 10, name="{cls}_{index:02d}")


def _cfg(data: Path, runs: Path, name: str = "vit", **kw: object) -> TrainConfig:
    base = dict(
        data=str(data),
        runs_dir=str(runs),
        name=name,
        model="vit-tiny",
        image_size=16,
        width=0.25,
        vit_depth=2,
        epochs=8,
        batch_size=16,
        optimizer="adamw",
        lr=3e-3,
        weight_decay=0.05,
        device="cpu",
        seed=1,
    )
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def vit_run(halves: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from classify.evaluation.evaluate import evaluate_run
    from classify.training.trainer import train

    runs = tmp_path_factory.mktemp("runs")
    train(_cfg(halves, runs), progress=False)
    evaluate_run(runs / "vit", "best", device="cpu", show_progress=False)
    return runs / "vit"


def test_the_vit_learns_a_separable_set_above_chance(vit_run: Path) -> None:
    metrics = read_json(vit_run / "eval" / "metrics.json")
    assert metrics["accuracy"] > 0.6, metrics["accuracy"]  # chance is 1/3
    config = read_json(vit_run / "config.json")
    assert config["model"]["name"] == "vit-tiny" and config["model"]["vit_depth"] == 2


def test_vit_resume_is_exact(halves: Path, tmp_path: Path) -> None:
    from test_train import StopAt

    from classify.training.trainer import TrainInterrupted, train

    short = dict(epochs=2)
    train(_cfg(halves, tmp_path, "ref", **short), progress=False)
    with pytest.raises(TrainInterrupted):
        train(_cfg(halves, tmp_path, "cut", **short), progress=False, callbacks=[StopAt(2, 1)])
    train(_cfg(halves, tmp_path, "cut", **short), resume=True, progress=False)
    a = load_checkpoint(tmp_path / "ref" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "cut" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_gradcam_works_on_the_token_grid(vit_run: Path, toy_images: Callable) -> None:
    from classify.checkpoint import load_classifier
    from classify.explain.cams import compute_cams
    from classify.explain.faithfulness import cam_faithfulness

    loaded = load_classifier(vit_run.name, "best", vit_run.parent, "cpu")
    images, labels = toy_images("halves", 6, seed=5)
    images = torch.nn.functional.interpolate(images.float(), size=16).to(torch.uint8)
    cams = compute_cams(loaded, images, labels.tolist())
    assert cams.shape == (6, 16, 16) and np.isfinite(cams).all()
    assert cams.min() >= 0 and cams.max() <= 1 and cams.max() > 0
    assert _no_hooks(loaded.model)
    faith = cam_faithfulness(loaded, images, labels.tolist())
    assert np.isfinite(faith["value"]) and faith["n_images"] == 6


def test_attention_command_writes_grids_overlays_and_scores(vit_run: Path) -> None:
    from cli import app

    runner = CliRunner()
    args = ["attention", vit_run.name, "--runs-dir", str(vit_run.parent), "--cam-per-class", "2",
            "--rollout", "--discard-ratio", "0.5", "--device", "cpu"]  # fmt: skip
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    eval_dir = vit_run / "eval"
    for name in ("attention_layer.png", "attention_rollout.png"):
        with Image.open(eval_dir / name) as img:
            assert img.width > 300 and img.height > 200
    heads = sorted(eval_dir.glob("attention_heads_*.png"))
    assert len(heads) == 3  # the first image of each class
    metrics = read_json(eval_dir / "metrics.json")
    assert set(metrics["attention"]) == {"layer", "rollout"}
    assert metrics["attention"]["rollout"]["discard_ratio"] == 0.5
    assert metrics["attention"]["layer"]["layer"] == 1  # -1 of two blocks
    assert metrics["attention"]["rollout"]["n_images"] == 6
    assert "accuracy" in metrics  # merged, not replaced
    assert _no_hooks_after_load(vit_run)


def _no_hooks_after_load(run: Path) -> bool:
    from classify.checkpoint import load_classifier

    return _no_hooks(load_classifier(run.name, "best", run.parent, "cpu").model)


def test_attention_command_on_files_and_bad_input(vit_run: Path, tmp_path: Path) -> None:
    from cli import app

    image = tmp_path / "shoe.png"
    Image.fromarray(np.full((20, 24, 3), 200, np.uint8)).save(image)
    runner = CliRunner()
    base = ["attention", vit_run.name, "--runs-dir", str(vit_run.parent), "--device", "cpu"]
    out = runner.invoke(app, [*base, str(image), "--out", str(tmp_path / "out")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "out" / "attention_heads_shoe.png").is_file()
    assert (tmp_path / "out" / "attention_layer.png").is_file()
    for bad, match in [(["--layer", "5"], "--layer 5"), (["--discard-ratio", "1"], "[0, 1)")]:
        result = runner.invoke(app, [*base, *bad])
        assert result.exit_code == 2 and match in result.output, result.output


def test_attention_command_refuses_a_resnet(
    halves: Path, tmp_path: Path, make_run: Callable[..., Path]
) -> None:
    from cli import app

    make_run(tmp_path, halves, name="cnn")
    result = CliRunner().invoke(app, ["attention", "cnn", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2 and "cli gradcam" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_train_all_trains_a_vit_beside_a_resnet(halves: Path, tmp_path: Path) -> None:
    from classify.training.train_all import TrainAllOptions, train_all

    base = replace(_cfg(halves, tmp_path), epochs=1, vit_depth=1, width=0.0625)
    summary = train_all(base, TrainAllOptions(models=("resnet50", "vit-tiny"), cam_per_class=1))
    rows = {row["model"]: row for row in summary["runs"]}
    assert set(rows) == {"resnet50", "vit-tiny"}
    assert all(np.isfinite(row["test_acc"]) for row in rows.values())
    saved = json.loads((tmp_path / "models.json").read_text())
    assert saved["best"] in rows


@pytest.fixture(scope="module")
def cnn_run(halves: Path, vit_run: Path, make_run: Callable[..., Path]) -> Path:
    return make_run(vit_run.parent, halves, name="cnn")


def test_compare_shows_the_vit_rollout_with_its_faithfulness(
    vit_run: Path, cnn_run: Path, tmp_path: Path
) -> None:
    from cli import app

    out = tmp_path / "report"
    args = ["compare", "cnn", "vit", "--runs-dir", str(vit_run.parent), "--out", str(out),
            "--cam-per-class", "1", "--resamples", "1000", "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = read_json(out / "report.json")
    cam = report["cam"]
    assert set(cam["faithfulness"]) == {"A", "B"} and set(cam["attention"]) == {"B"}
    assert cam["attention"]["B"]["method"] == "attention-rollout"
    assert np.isfinite(cam["attention"]["B"]["value"])
    markdown = (out / "report.md").read_text()
    assert "B: vit (attention rollout)" in markdown
    with Image.open(out / report["figures"]["cam"]) as figure:
        assert figure.width > 4 * 128  # image + A + B + B's rollout columns


def test_explain_puts_cnn_and_vit_maps_in_one_figure(
    vit_run: Path, cnn_run: Path, tmp_path: Path
) -> None:
    from cli import app

    target = tmp_path / "explain.png"
    args = ["explain", "cnn", "vit", "--runs-dir", str(vit_run.parent), "--out", str(target),
            "--cam-per-class", "1", "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert target.is_file() and "attention rollout" in result.output
    summary = read_json(target.with_suffix(".json"))
    views = [row["view"] for row in summary["faithfulness"]]
    assert views == ["cnn (gradcam)", "vit (gradcam)", "vit (attention rollout)"]
    assert all(np.isfinite(row["value"]) for row in summary["faithfulness"])
    assert len(summary["files"]) == 3


def test_position_embedding_and_class_token_are_not_decayed() -> None:
    from classify.training.optim import parameter_groups

    model = _vit()
    decay, no_decay = parameter_groups(model, 0.05)
    ids = {id(p) for p in no_decay["params"]}
    assert id(model.class_token) in ids and id(model.encoder.pos_embedding) in ids
    assert id(model.conv_proj.weight) in {id(p) for p in decay["params"]}
