"""Classical augmentation arms (issue 10, section 2): per-sample TrivialAugment / RandAugment /
AutoAugment and batch mixup / CutMix, the ``--augment`` grammar, and the old values unchanged."""

from __future__ import annotations

import hashlib

import pytest
import torch
from torchvision.transforms import v2
from typer.testing import CliRunner

from classify import names
from classify.classical.apply import augment_batch
from classify.classical.crops import random_hflip, resized_crop
from classify.classical.mixing import MIX_TRANSFORMS, mix_batch, target_labels
from classify.classical.policies import POLICY_TRANSFORMS, apply_policy
from classify.classical.spec import AugmentSpec, parse_augment
from classify.training.config import TrainConfig
from core.errors import UserError


def _batch(n: int = 6, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _digest(images: torch.Tensor) -> str:
    return hashlib.sha256(images.numpy().tobytes()).hexdigest()[:16]


# --- the --augment grammar ----------------------------------------------------------------------


def test_registries_match_the_torch_free_names() -> None:
    assert tuple(POLICY_TRANSFORMS) == names.POLICIES
    assert tuple(MIX_TRANSFORMS) == names.MIXES


@pytest.mark.parametrize(
    ("value", "spec"),
    [
        ("pad-crop", AugmentSpec("pad-crop")),
        ("none", AugmentSpec("none")),
        ("trivialaugment", AugmentSpec("pad-crop", "trivialaugment")),
        ("mixup,randaugment", AugmentSpec("pad-crop", "randaugment", "mixup")),
        ("resized-crop, autoaugment, cutmix", AugmentSpec("resized-crop", "autoaugment", "cutmix")),
        ("none,cutmix", AugmentSpec("none", None, "cutmix")),
    ],
)
def test_augment_values_parse(value: str, spec: AugmentSpec) -> None:
    assert parse_augment(value) == spec
    TrainConfig(augment=value).validate()


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("nope", "unknown 'nope'"),
        ("trivialaugment,nope", "unknown 'nope'"),
        ("", "unknown ''"),
        ("trivialaugment,randaugment", "two of a kind"),
        ("pad-crop,none", "two of a kind"),
        ("mixup,cutmix", "two of a kind"),
    ],
)
def test_bad_augment_values_are_one_line_errors(value: str, match: str) -> None:
    for call in (
        lambda: parse_augment(value),
        lambda: TrainConfig(augment=value).validate(),
        lambda: augment_batch(_batch(), value, hflip=True, generator=_gen(0)),
    ):
        with pytest.raises(UserError, match=match) as err:
            call()
        assert "\n" not in str(err.value) and "--augment" in str(err.value)


def test_click_refuses_a_bad_augment_value() -> None:
    from cli import app

    result = CliRunner().invoke(app, ["train", "--augment", "trivialaugment,nope"])
    assert result.exit_code == 2 and "Invalid value" in result.output
    assert "unknown 'nope'" in result.output


# --- the old values are unchanged --------------------------------------------------------------

# sha256 prefixes of augment_batch(_batch(), value, hflip, _gen(1)) and the generator's next
# draw, recorded before the policies and mixes were added.
BEFORE = {
    ("pad-crop", True): ("354fa303b5fe017a", 0.93708336353302),
    ("pad-crop", False): ("05920bf7ab8cfd72", 0.6826140880584717),
    ("none", True): ("877060fa7e7d3568", 0.3971373438835144),
    ("none", False): ("c36c17bad4bccf31", 0.7576315999031067),
}


@pytest.mark.parametrize(("value", "hflip"), list(BEFORE))
def test_existing_values_give_the_same_images_and_draws(value: str, hflip: bool) -> None:
    generator = _gen(1)
    out = augment_batch(_batch(), value, hflip=hflip, generator=generator)
    digest, next_draw = BEFORE[(value, hflip)]
    assert _digest(out) == digest
    assert torch.rand(1, generator=generator).item() == pytest.approx(next_draw, abs=0)


def test_resized_crop_draws_as_before() -> None:
    """Bilinear resampling may round differently on another CPU, so no digest: the same draws as
    the unchanged crop and flip called directly, and nothing more."""
    a, b = _gen(1), _gen(1)
    out = augment_batch(_batch(), "resized-crop", hflip=True, generator=a)
    assert torch.equal(out, random_hflip(resized_crop(_batch(), b), b))
    assert torch.equal(a.get_state(), b.get_state())


# --- per-sample policies ------------------------------------------------------------------------


@pytest.mark.parametrize("policy", list(POLICY_TRANSFORMS))
@pytest.mark.parametrize("crop", ["pad-crop", "none"])
def test_policy_keeps_shape_dtype_and_is_seeded(policy: str, crop: str) -> None:
    images, value = _batch(n=8), f"{crop},{policy}"
    before = torch.get_rng_state()
    a = augment_batch(images, value, hflip=True, generator=_gen(1))
    torch.manual_seed(123)  # the global RNG's state must not matter
    b = augment_batch(images, value, hflip=True, generator=_gen(1))
    c = augment_batch(images, value, hflip=True, generator=_gen(2))
    assert a.shape == images.shape and a.dtype == torch.uint8 and a.device == images.device
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.set_rng_state(before)
    augment_batch(images, value, hflip=True, generator=_gen(1))
    assert torch.equal(torch.get_rng_state(), before)  # the global stream is left as it was


@pytest.mark.parametrize("policy", list(POLICY_TRANSFORMS))
def test_each_sample_gets_its_own_ops(policy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spy on the op torchvision applies: one draw per image, not one for the whole batch (which
    is what a v2 auto-augment transform does when given a batched tensor)."""
    calls: list[tuple[int, str, float]] = []
    cls = type(POLICY_TRANSFORMS[policy]())
    apply = cls._apply_image_or_video_transform

    def spy(self: v2.Transform, image: torch.Tensor, op: str, magnitude: float, **kw: object):
        calls.append((image.ndim, op, magnitude))
        return apply(self, image, op, magnitude, **kw)

    monkeypatch.setattr(cls, "_apply_image_or_video_transform", spy)
    same = _batch(n=1, seed=5).expand(16, -1, -1, -1).contiguous()  # 16 copies of one image
    out = apply_policy(same, policy, _gen(0))
    assert {ndim for ndim, _, _ in calls} == {3}  # called image by image
    assert len({op for _, op, _ in calls}) > 2  # different ops within one batch
    assert len({_digest(image) for image in out}) > 4  # identical inputs, different outputs
    calls.clear()
    torch.manual_seed(0)
    whole = POLICY_TRANSFORMS[policy]()(same)
    assert all(torch.equal(image, whole[0]) for image in whole)  # the pitfall being avoided


# --- mixup and CutMix ---------------------------------------------------------------------------


def _inputs(n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(n, 3, 16, 16, generator=_gen(7)) * 2 - 1
    return x, torch.arange(n) % 3


@pytest.mark.parametrize("mix", list(MIX_TRANSFORMS))
def test_mix_targets_are_probabilities_and_seeded(mix: str) -> None:
    x, y = _inputs()
    before = torch.get_rng_state()
    mixed, targets = mix_batch(x, y, mix, 3, _gen(1))
    assert torch.equal(torch.get_rng_state(), before)
    assert mixed.shape == x.shape and mixed.dtype == x.dtype
    assert targets.shape == (6, 3) and targets.dtype == torch.float32
    assert (targets >= 0).all() and torch.allclose(targets.sum(1), torch.ones(6))
    again, again_targets = mix_batch(x, y, mix, 3, _gen(1))
    assert torch.equal(mixed, again) and torch.equal(targets, again_targets)
    other, other_targets = mix_batch(x, y, mix, 3, _gen(2))
    assert not torch.equal(targets, other_targets)


def test_mixup_blends_images_as_their_labels() -> None:
    x, y = _inputs()
    mixed, targets = mix_batch(x, y, "mixup", 3, _gen(1))
    lam = targets[0, y[0]]  # consecutive labels differ, so this is lam
    assert torch.allclose(targets[torch.arange(6), y], lam.expand(6))
    assert torch.allclose(mixed, lam * x + (1 - lam) * x.roll(1, 0), atol=1e-6)


def test_cutmix_pastes_a_box_whose_area_is_the_label_weight() -> None:
    x, y = _inputs()
    for seed in range(5):
        mixed, targets = mix_batch(x, y, "cutmix", 3, _gen(seed))
        own = (mixed == x).all(1)  # pixels kept from the image itself
        pasted = (mixed == x.roll(1, 0)).all(1)
        assert (own | pasted).all()
        assert torch.allclose(own.float().mean((1, 2)), targets[torch.arange(6), y])


@pytest.mark.parametrize("mix", list(MIX_TRANSFORMS))
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_loss_takes_mixed_targets_with_label_smoothing(mix: str, smoothing: float) -> None:
    x, y = _inputs()
    _, targets = mix_batch(x, y, mix, 3, _gen(3))
    logits = torch.randn(6, 3, generator=_gen(4), requires_grad=True)
    loss = torch.nn.CrossEntropyLoss(label_smoothing=smoothing)(logits, targets)
    # timm's mixup_target: mixing the smoothed one-hot labels is smoothing the mixed target.
    smoothed = (1 - smoothing) * targets + smoothing / 3
    expected = -(smoothed * logits.log_softmax(1)).sum(1).mean()
    assert torch.isfinite(loss) and torch.allclose(loss, expected)
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_accuracy_counts_the_dominant_label() -> None:
    targets = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.4, 0.6], [0.0, 1.0, 0.0]])
    assert target_labels(targets).tolist() == [0, 2, 1]
    assert target_labels(torch.tensor([2, 0])).tolist() == [2, 0]  # hard labels as they are
