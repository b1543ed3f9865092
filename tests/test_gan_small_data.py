"""The small-data options of the GAN (issue 11): conditional BatchNorm in G, LeCam, adaptive
augmentation strength, R1, their validation and CLI choices, and an exact resume with them on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from augment.fid.standin import RandomConvExtractor
from augment.gan import config as gan_config
from augment.gan import diffaugment, models
from augment.gan.ada import AdaptiveAugment
from augment.gan.cbn import ConditionalBatchNorm2d
from augment.gan.regularizers import LecamAnchors, RunningMean, lecam_penalty, r1_penalty
from augment.gan.trainer import GanInterrupted, train_gan
from core.errors import UserError
from core.io import load_checkpoint, read_jsonl

pytestmark = pytest.mark.usefixtures("private_cache")  # conftest.py


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory, make_dataset: Callable[..., Path]) -> Path:
    return make_dataset(tmp_path_factory.mktemp("colours") / "data", "colours", 12, 2)


# -- conditional BatchNorm ----------------------------------------------------------------------


def test_conditional_batchnorm_scales_and_shifts_by_class() -> None:
    norm = ConditionalBatchNorm2d(4, num_classes=3)
    assert torch.equal(norm.gain.weight, torch.ones(3, 4))  # gain 1, bias 0: plain BN at first
    assert torch.equal(norm.bias.weight, torch.zeros(3, 4))
    x = torch.randn(6, 4, 5, 5)
    same = x[:3].repeat(2, 1, 1, 1)  # the same three images, as class 0 and as class 1
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    out = norm(same, y)
    assert torch.allclose(out[:3], out[3:])
    with torch.no_grad():
        norm.gain.weight[1] = 2.0
        norm.bias.weight[1] = 0.5
    out = norm(same, y)
    assert torch.allclose(out[3:], 2.0 * out[:3] + 0.5, atol=1e-6)


def test_cbn_generator_gains_depend_on_the_class() -> None:
    cfg = gan_config.GanConfig(ngf=4, z_size=8, g_conditioning="cbn")
    torch.manual_seed(0)
    g = models.build_generator(cfg, num_classes=3)
    assert getattr(g, "embed", None) is None and (g.z_size, g.num_classes) == (8, 3)
    z = torch.randn(4, 8)
    y0, y1 = torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long)
    g.eval()
    assert torch.equal(g(z, y0), g(z, y1))  # gains 1 and biases 0 for every class at first
    g.train()
    (g(z, y0).mean() - g(z, y1).square().mean()).backward()
    grad = g.norms[0].gain.weight.grad
    assert grad is not None and grad[0].abs().sum() > 0 and grad[1].abs().sum() > 0
    assert not torch.allclose(grad[0], grad[1]) and torch.equal(grad[2], torch.zeros_like(grad[2]))
    torch.optim.SGD(g.parameters(), lr=1.0).step()
    g.eval()
    assert not torch.allclose(g(z, y0), g(z, y1))
    with pytest.raises(ValueError, match="labels"):
        g(z)


def test_generator_registry_matches_the_config() -> None:
    assert tuple(models.GENERATORS) == gan_config.G_CONDITIONINGS
    concat = models.build_generator(gan_config.GanConfig(ngf=4, z_size=8, embed_dim=4), 3)
    assert isinstance(concat, models.Generator)  # the default is today's generator


# -- LeCam --------------------------------------------------------------------------------------


def test_lecam_term_by_hand() -> None:
    # outputs equal to the running means of the other side, or all equal: nothing to pull back
    assert lecam_penalty(torch.tensor([0.3, 0.3]), torch.tensor([0.3, 0.3]), 0.3, 0.3) == 0
    assert lecam_penalty(torch.tensor([-0.2, 0.5]), torch.tensor([0.4, 0.9]), 0.1, 0.5) == 0
    # real outputs [1, 3] above alpha_F = 0: (1 + 9) / 2; fakes [-2, 0] below alpha_R = 1: (9 + 1) / 2
    d_real = torch.tensor([1.0, 3.0], requires_grad=True)
    value = lecam_penalty(d_real, torch.tensor([-2.0, 0.0]), alpha_real=1.0, alpha_fake=0.0)
    assert value.item() == pytest.approx(10.0)
    value.backward()
    assert d_real.grad is not None and d_real.grad.tolist() == pytest.approx([1.0, 3.0])


def test_lecam_is_zero_when_outputs_equal_their_running_means_and_d_cannot_separate() -> None:
    """With D(x) == alpha_R and D(G(z)) == alpha_F the authors' term is 2 relu(alpha_R - alpha_F)^2:
    zero while D does not rank reals above fakes, positive once it separates them."""
    anchors = LecamAnchors(decay=0.99)
    outputs = torch.full((4,), 0.25)
    assert anchors.penalty(outputs, outputs).item() == 0  # first update: the means are the outputs
    separated = LecamAnchors(decay=0.99)
    value = separated.penalty(torch.full((4,), 1.0), torch.full((4,), -1.0))
    assert (separated.real.value, separated.fake.value) == (1.0, -1.0)
    assert value.item() == pytest.approx(2 * 2.0**2)


def test_running_mean_is_bias_corrected_and_round_trips() -> None:
    mean = RunningMean(0.99)
    assert mean.update(1.0) == pytest.approx(1.0)
    assert mean.update(3.0) == pytest.approx((0.0099 * 1 + 0.01 * 3) / (1 - 0.99**2))
    again = RunningMean(0.99)
    again.load_state_dict(mean.state_dict())
    assert again.value == mean.value and again.update(2.0) == mean.update(2.0)


# -- adaptive augmentation ----------------------------------------------------------------------


def test_adaptive_probability_rises_while_d_overfits_and_falls_otherwise() -> None:
    ada = AdaptiveAugment(target=0.6, interval=4, kimg=1.28, batch_size=32)  # 0.1 per adjustment
    confident = torch.full((32,), 2.0)  # D says "real" to every real image: r_t = 1 > 0.6
    for _ in range(3):
        ada.observe(confident)
        assert not ada.adjust() and ada.p == 0.0  # only every 4 batches
    ada.observe(confident)
    assert ada.adjust() and ada.p == pytest.approx(0.1) and ada.r_t == 1.0
    for _ in range(4 * 12):
        ada.observe(confident)
        ada.adjust()
    assert ada.p == 1.0  # clamped
    unsure = torch.tensor([1.0, -1.0] * 16)  # r_t = 0 < 0.6: augmentation is no longer needed
    for _ in range(4 * 3):
        ada.observe(unsure)
        ada.adjust()
    assert ada.p == pytest.approx(0.7) and ada.r_t == 0.0
    copy = AdaptiveAugment(0.6, 4, 1.28, 32)
    copy.load_state_dict(ada.state_dict())
    assert copy.state_dict() == ada.state_dict()


def test_diffaugment_probability_applies_each_transform_to_some_images() -> None:
    x = torch.rand(64, 3, 8, 8) * 2 - 1
    gen = torch.Generator().manual_seed(0)
    assert diffaugment.diff_augment(x, "color", gen, probability=0.0) is x
    assert torch.equal(gen.get_state(), torch.Generator().manual_seed(0).get_state())  # no draws
    always = diffaugment.diff_augment(x, "color", torch.Generator().manual_seed(0), probability=1)
    assert all(not torch.equal(a, b) for a, b in zip(always, x, strict=True))
    half = diffaugment.diff_augment(x, "color", torch.Generator().manual_seed(0), probability=0.5)
    untouched = sum(torch.equal(a, b) for a, b in zip(half, x, strict=True))
    assert 0 < untouched < 32  # (1/2)^3 of the images expected untouched
    plain = diffaugment.diff_augment(x, "color", torch.Generator().manual_seed(0))
    assert torch.equal(
        plain, diffaugment.diff_augment(x, "color", torch.Generator().manual_seed(0))
    )


# -- R1 -----------------------------------------------------------------------------------------


def test_r1_is_zero_without_input_gradient_and_the_squared_gradient_norm_otherwise() -> None:
    x = torch.randn(5, 3, 4, 4, requires_grad=True)
    bias = torch.tensor(0.7, requires_grad=True)
    flat = (x * 0.0).flatten(1).sum(1) + bias  # depends on x, with zero gradient
    assert r1_penalty(flat, x).item() == 0.0
    assert r1_penalty(bias.expand(5), x).item() == 0.0  # does not depend on x at all
    w = torch.randn(3, 4, 4, requires_grad=True)
    linear = (x * w).flatten(1).sum(1)  # gradient w for every image
    penalty = r1_penalty(linear, x)
    assert penalty.item() == pytest.approx(w.square().sum().item(), rel=1e-5)
    penalty.backward()  # differentiable: D's parameters get a gradient from it
    assert w.grad is not None and torch.allclose(w.grad, 2 * w)
    d = models.Discriminator(2, 32, ndf=4)
    images = torch.randn(4, 3, 32, 32, requires_grad=True)
    assert r1_penalty(d(images, torch.tensor([0, 1, 0, 1])), images).item() > 0


# -- validation and the CLI ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "flag"),
    [
        ({"g_conditioning": "film"}, "--g-conditioning"),
        ({"g_conditioning": "cbn", "per_class_models": True}, "--g-conditioning"),
        ({"lecam_weight": -0.1}, "--lecam-weight"),
        ({"lecam_decay": 1.0}, "--lecam-decay"),
        ({"ada_target": 1.5}, "--ada-target"),
        ({"ada_target": 0.6, "diffaugment": ""}, "--ada-target"),
        ({"ada_interval": 0}, "--ada-interval"),
        ({"ada_kimg": 0.0}, "--ada-kimg"),
        ({"r1_gamma": -1.0}, "--r1-gamma"),
        ({"r1_interval": 0}, "--r1-interval"),
    ],
)
def test_bad_values_are_one_line_errors(overrides: dict, flag: str) -> None:
    with pytest.raises(UserError) as error:
        gan_config.GanConfig(**overrides).validate()
    assert str(error.value).startswith(flag) and "\n" not in str(error.value)


def test_defaults_are_off_and_zero_means_off() -> None:
    cfg = gan_config.GanConfig().validate()
    assert (cfg.g_conditioning, cfg.lecam_weight, cfg.ada_target, cfg.r1_gamma) == (
        "concat", 0.0, None, 0.0
    )  # fmt: skip
    assert not cfg.ada_enabled and not gan_config.GanConfig(ada_target=0.0).validate().ada_enabled
    for bad in ({"truncation": 0.01}, {"precision_recall_k": 0}):
        with pytest.raises(UserError, match="^--"):
            gan_config.SynthConfig(gan="g", **bad).validate()


def test_cli_refuses_an_unknown_conditioning() -> None:
    from cli import app

    result = CliRunner().invoke(app, ["gan-train", "--g-conditioning", "nope"])
    assert result.exit_code == 2 and "Invalid value" in result.output
    result = CliRunner().invoke(app, ["gan-train", "--data", "x", "--lecam-weight", "-1"])
    assert result.exit_code == 2 and "--lecam-weight -1.0: must be >= 0" in result.output


# -- a run with everything on -------------------------------------------------------------------


def _without_timing(records: list[dict]) -> list[dict]:
    drop = {"seconds", "images_per_second"}
    return [{k: v for k, v in r.items() if k not in drop} for r in records]


def test_interrupted_and_resumed_run_with_the_new_options_equals_uninterrupted(
    colours: Path, tmp_path: Path, tiny_gan_config: Callable
) -> None:
    options = dict(g_conditioning="cbn", lecam_weight=0.3, ada_target=0.6, ada_interval=2,
                   ada_kimg=0.032, r1_gamma=1.0, r1_interval=2, iterations=7)  # fmt: skip
    extractor = RandomConvExtractor()
    train_gan(tiny_gan_config(colours, tmp_path, name="full", **options), progress=False,
              extractor=extractor)  # fmt: skip
    part = tiny_gan_config(colours, tmp_path, name="part", **options)
    with pytest.raises(GanInterrupted):
        train_gan(part, progress=False, extractor=extractor, stop_after=3)
    train_gan(part, resume=True, progress=False, extractor=extractor)

    a = load_checkpoint(tmp_path / "full" / "last.pt")
    b = load_checkpoint(tmp_path / "part" / "last.pt")
    for key in ("G", "D", "G_ema"):
        assert a[key].keys() == b[key].keys() and all(torch.equal(a[key][k], b[key][k])
                                                      for k in a[key]), key  # fmt: skip
    assert a["regularizers"] == b["regularizers"]
    (state,) = a["regularizers"]
    assert state["lecam"]["real"]["updates"] == 7 and 0.0 <= state["ada"]["p"] <= 1.0
    history_a = read_jsonl(tmp_path / "full" / "history.jsonl")
    assert _without_timing(history_a) == _without_timing(
        read_jsonl(tmp_path / "part" / "history.jsonl")
    )
    train = [r for r in history_a if r["kind"] == "train"]
    assert {"lecam_loss", "r1_loss", "augment_p", "d_real_sign"} <= set(train[-1])
    assert any(r["augment_p"] > 0 for r in train)  # p moves by 0.5 every 2 iterations


def test_default_run_logs_and_saves_no_regularizer_state(
    colours: Path, tmp_path: Path, tiny_gan_config: Callable
) -> None:
    train_gan(tiny_gan_config(colours, tmp_path, iterations=2, fid_samples=0), progress=False)
    state = load_checkpoint(tmp_path / "g" / "last.pt")
    assert state["regularizers"] == [{"lecam": None, "ada": None}]
    train = [r for r in read_jsonl(tmp_path / "g" / "history.jsonl") if r["kind"] == "train"]
    assert set(train[-1]) == {"kind", "iteration", "d_loss", "g_loss", "d_real_acc",
                              "d_fake_acc", "images_per_second", "seconds"}  # fmt: skip
