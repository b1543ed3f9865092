"""The conditional DCGAN, DiffAugment, losses, EMA, and training runs (tiny, CPU)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from augment.fid.standin import RandomConvExtractor
from augment.gan import config as gan_config
from augment.gan import diffaugment, losses, models
from augment.gan.ema import ema_decay_at, ema_update
from augment.gan.trainer import GanInterrupted, train_gan
from augment.sampling import class_generator, class_images, load_gan
from core.errors import UserError
from core.io import load_checkpoint, read_jsonl

COLOURS = {"blue": (20, 40, 230), "red": (230, 30, 30)}  # conftest's "colours" pattern


pytestmark = pytest.mark.usefixtures("private_cache")  # conftest.py


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory, make_dataset: Callable[..., Path]) -> Path:
    return make_dataset(tmp_path_factory.mktemp("colours") / "data", "colours", 24, 6)


# -- models -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 64, 128])
def test_generator_and_discriminator_shapes(size: int) -> None:
    g = models.Generator(num_classes=3, image_size=size, z_size=16, ngf=4, embed_dim=8)
    d = models.Discriminator(3, size, ndf=4, spectral_norm=size == 64, minibatch_std=size != 64)
    z, y = torch.randn(5, 16), torch.tensor([0, 1, 2, 0, 1])
    images = g(z, y)
    assert images.shape == (5, 3, size, size)
    assert images.min() >= -1 and images.max() <= 1
    assert (g.z_size, g.num_classes) == (16, 3)
    logits = d(images, y)
    assert logits.shape == (5,) and torch.isfinite(logits).all()


def test_unsupported_size_and_missing_labels_fail() -> None:
    with pytest.raises(ValueError):
        models.Generator(num_classes=2, image_size=48)
    with pytest.raises(ValueError):
        models.Generator(num_classes=2, image_size=32, ngf=4)(torch.randn(2, 128))


def test_dcgan_init_and_projection_head_uses_labels() -> None:
    torch.manual_seed(0)
    d = models.Discriminator(num_classes=3, image_size=32, ndf=8)
    conv = d.net[0]
    assert abs(conv.weight.std().item() - 0.02) < 0.005  # N(0, 0.02)
    x = torch.randn(4, 3, 32, 32)
    d.eval()
    out0, out1 = d(x, torch.zeros(4, dtype=torch.long)), d(x, torch.ones(4, dtype=torch.long))
    assert not torch.allclose(out0, out1)  # <embed(y), h> differs by class


def test_per_class_generator_routes_each_sample_to_its_class_model() -> None:
    gens = [models.Generator(1, 32, z_size=8, ngf=4) for _ in range(3)]
    ensemble = models.PerClassGenerator(gens).eval()
    z, y = torch.randn(6, 8), torch.tensor([2, 0, 1, 2, 0, 1])
    with torch.no_grad():
        out = ensemble(z, y)
        for i in range(6):
            assert torch.allclose(out[i], gens[int(y[i])](z[i : i + 1])[0], atol=1e-6)
    assert (ensemble.z_size, ensemble.num_classes) == (8, 3)


def test_config_mirrors_the_registries() -> None:
    assert tuple(losses.LOSSES) == gan_config.LOSS_NAMES
    assert tuple(diffaugment.AUGMENT_FNS) == gan_config.POLICY_PARTS
    assert gan_config.IMAGE_SIZES == models.IMAGE_SIZES
    assert gan_config.DEFAULT_POLICY == diffaugment.DEFAULT_POLICY
    with pytest.raises(UserError, match="--diffaugment"):
        gan_config.GanConfig(diffaugment="color,zoom").validate()
    with pytest.raises(UserError, match="--preset"):
        gan_config.GAN_PRESETS.apply(gan_config.GanConfig(), "huge")
    assert gan_config.GAN_PRESETS.apply(gan_config.GanConfig(), "quick", {"ngf": 16}).ngf == 16


# -- DiffAugment, losses, EMA -----------------------------------------------------------------


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_diffaugment_keeps_shape_dtype_and_gradients(policy: str) -> None:
    x = (torch.rand(6, 3, 32, 32) * 2 - 1).requires_grad_(True)
    out = diffaugment.diff_augment(x, policy, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.equal(out, x)
    out.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    again = diffaugment.diff_augment(x, policy, torch.Generator().manual_seed(0))
    other = diffaugment.diff_augment(x, policy, torch.Generator().manual_seed(1))
    assert torch.equal(out, again) and not torch.equal(out, other)


def test_diffaugment_empty_policy_is_identity_and_unknown_is_refused() -> None:
    x = torch.randn(2, 3, 32, 32)
    assert diffaugment.diff_augment(x, "") is x
    with pytest.raises(UserError, match="zoom"):
        diffaugment.diff_augment(x, "color,zoom")


def test_translation_moves_pixels_and_fills_zeros() -> None:
    x = torch.ones(8, 1, 32, 32)
    out = diffaugment.rand_translation(x, torch.Generator().manual_seed(3))
    shifted = (out == 0).flatten(1).any(1)
    assert shifted.any() and set(out.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("name", list(losses.LOSSES))
def test_losses_reward_a_correct_discriminator_and_a_fooling_generator(name: str) -> None:
    loss = losses.LOSSES[name]
    good, bad = torch.full((4,), 3.0), torch.full((4,), -3.0)
    assert loss.d_loss(good, bad) < loss.d_loss(bad, good)
    assert loss.g_loss(good) < loss.g_loss(bad)


def test_ema_averages_parameters_and_copies_buffers() -> None:
    model, ema = torch.nn.BatchNorm2d(2), torch.nn.BatchNorm2d(2)
    with torch.no_grad():
        model.weight.fill_(3.0)
        model.running_mean.fill_(5.0)
        ema.weight.fill_(1.0)
    ema_update(ema, model, decay=0.75)
    assert torch.allclose(ema.weight, torch.full((2,), 1.5))
    assert torch.equal(ema.running_mean, model.running_mean)
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1)
    assert ema_decay_at(10**6, 0.999) == 0.999


# -- training runs ----------------------------------------------------------------------------


def test_conditional_gan_learns_each_class_colour(
    colours: Path, tmp_path: Path, tiny_gan_config: Callable
) -> None:
    """Asked for "red", G paints red; asked for "blue", blue. An unconditional or broken model
    cannot pass: both classes would get the same colour distribution."""
    cfg = tiny_gan_config(colours, tmp_path, iterations=120, batch_size=16, ngf=8, ndf=8,
                          lr=1e-3, eval_every=120, fid_samples=0, ema_decay=0.9,
                          log_every=40)  # fmt: skip
    train_gan(cfg, progress=False)
    gan = load_gan("g", "last", runs_dir=tmp_path)
    targets = {name: torch.tensor(rgb, dtype=torch.float) for name, rgb in COLOURS.items()}
    for c, name in enumerate(gan.class_names):
        images = class_images(gan.generator, c, 32, class_generator(0, c))
        mean = images.float().mean(dim=(0, 2, 3))
        other = next(n for n in targets if n != name)
        assert (mean - targets[name]).norm() < (mean - targets[other]).norm(), (name, mean)


def _state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _without_timing(records: list[dict]) -> list[dict]:
    drop = {"seconds", "images_per_second"}
    return [{k: v for k, v in r.items() if k not in drop} for r in records]


@pytest.mark.parametrize("per_class", [False, True])
def test_interrupted_and_resumed_run_equals_uninterrupted(
    colours: Path, tmp_path: Path, per_class: bool, tiny_gan_config: Callable
) -> None:
    extractor = RandomConvExtractor()
    full = tiny_gan_config(colours, tmp_path, name="full", per_class_models=per_class, iterations=7)
    train_gan(full, progress=False, extractor=extractor)

    part = tiny_gan_config(colours, tmp_path, name="part", per_class_models=per_class, iterations=7)
    with pytest.raises(GanInterrupted) as stop:
        train_gan(part, progress=False, extractor=extractor, stop_after=4)
    assert stop.value.saved and load_checkpoint(tmp_path / "part" / "last.pt")["iteration"] == 4

    def interrupt(iteration: int) -> None:  # a Ctrl-C at iteration 5, after a resume
        if iteration == 5:
            raise KeyboardInterrupt

    with pytest.raises(GanInterrupted):
        train_gan(part, resume=True, progress=False, extractor=extractor, on_iteration=interrupt)
    train_gan(part, resume=True, progress=False, extractor=extractor)

    a = load_checkpoint(tmp_path / "full" / "last.pt")
    b = load_checkpoint(tmp_path / "part" / "last.pt")
    assert a["iteration"] == b["iteration"] == 7
    for key in ("G", "D", "G_ema"):
        assert _state_equal(a[key], b[key]), key
    assert torch.equal(a["noise_generator"], b["noise_generator"])
    assert a["best_fid"] == b["best_fid"] and a["best_iteration"] == b["best_iteration"]
    history_a = read_jsonl(tmp_path / "full" / "history.jsonl")
    history_b = read_jsonl(tmp_path / "part" / "history.jsonl")
    assert _without_timing(history_a) == _without_timing(history_b)
    assert [r["iteration"] for r in history_a if r["kind"] == "eval"] == [3, 6, 7]
    assert (tmp_path / "full" / "samples" / "iter_000007.png").is_file()


def test_run_folder_contents_and_refusals(
    colours: Path, tmp_path: Path, tiny_gan_config: Callable
) -> None:
    cfg = tiny_gan_config(colours, tmp_path, iterations=2, eval_every=5, fid_samples=0)
    result = train_gan(cfg, progress=False)
    assert result.best_fid is None and result.best_iteration == 2  # FID off: best = last
    run = tmp_path / "g"
    config = json.loads((run / "config.json").read_text())
    assert config["gan"]["ngf"] == 8 and config["class_names"] == ["blue", "red"]
    # the training part of the split only: 4 of each class's 24 images are held out for validation
    assert config["dataset"]["train_class_counts"] == {"blue": 20, "red": 20}
    assert config["dataset"]["split"]["held_out"] and (run / "split.json").is_file()
    best, last = load_checkpoint(run / "best.pt"), load_checkpoint(run / "last.pt")
    assert best["format"] == "shoegan-gan/1" and _state_equal(best["G_ema"], last["G_ema"])
    with pytest.raises(UserError, match="exists"):
        train_gan(cfg, progress=False)
    with pytest.raises(UserError, match="lr"):
        train_gan(tiny_gan_config(colours, tmp_path, lr=1e-3), resume=True, progress=False)
    with pytest.raises(UserError, match="only be extended"):
        train_gan(tiny_gan_config(colours, tmp_path, iterations=1), resume=True, progress=False)
    inside = tiny_gan_config(colours, colours / "runs", iterations=1)
    with pytest.raises(UserError, match="inside the dataset"):
        train_gan(inside, progress=False)
    assert not (colours / "runs").exists()


def test_cli_gan_train(colours: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli import app
    from commands.configs import FEATURES_ENV

    monkeypatch.setenv(FEATURES_ENV, "random-conv")  # the stand-in: no option offers it

    args = ["gan-train", "--data", str(colours), "--name", "c", "--runs-dir", str(tmp_path),
            "--preset", "quick", "--iterations", "3", "--eval-every", "2", "--batch-size", "8",
            "--ngf", "8", "--ndf", "8", "--fid-samples", "6", "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(app, args)  # with progress bars
    assert result.exit_code == 0, result.output
    run = tmp_path / "c"
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "iter_000002.png",
        "iter_000003.png",
    ]
    saved = json.loads((run / "config.json").read_text())["gan"]
    assert saved["iterations"] == 3 and saved["eval_every"] == 2 and saved["fid_samples"] == 6
    assert saved["minibatch_std"] is True and saved["batch_size"] == 8  # preset, then options
    evals = [r for r in read_jsonl(run / "history.jsonl") if r["kind"] == "eval"]
    assert set(evals[-1]["fid"]["per_class"]) == {"blue", "red"}
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "exists" in again.output
    extended = CliRunner().invoke(
        app,
        [
            "gan-train",
            "--name",
            "c",
            "--runs-dir",
            str(tmp_path),
            "--resume",
            "--iterations",
            "4",
            "--no-progress",
        ],  # fmt: skip
    )
    assert extended.exit_code == 0, extended.output
    assert load_checkpoint(run / "last.pt")["iteration"] == 4
