"""Standing statistics of the EMA generator (Brock et al. 2019): what they estimate, that they leave
the trained generator and the global RNG alone, and where sampling uses them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from augment.gan import config as gan_config
from augment.gan import models
from augment.gan.config import SynthConfig
from augment.gan.ema import standing_statistics
from augment.gan.trainer import train_gan
from augment.sampling import STANDING_SEED_OFFSET, load_gan
from augment.synthesize import synthesize
from core.errors import UserError
from core.io import load_checkpoint

pytestmark = pytest.mark.usefixtures("private_cache")  # conftest.py


def _norms(module: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


def _generator(**overrides: object) -> nn.Module:
    torch.manual_seed(0)
    cfg = gan_config.GanConfig(ngf=4, z_size=8, embed_dim=4, **overrides)  # type: ignore[arg-type]
    return models.build_generator(cfg, num_classes=3).eval()


def test_first_norm_holds_the_average_of_the_batches_own_statistics() -> None:
    g = _generator()
    standing = standing_statistics(g, batches=3, batch_size=5, seed=11)
    noise = torch.Generator().manual_seed(11)  # the draws standing_statistics makes, in order
    means, variances = [], []
    with torch.no_grad():
        for _ in range(3):
            z = torch.randn(5, g.z_size, generator=noise)
            y = torch.randint(3, (5,), generator=noise)
            h = g.net[0](torch.cat([z, g.embed(y)], dim=1)[:, :, None, None])  # before the 1st BN
            means.append(h.mean(dim=(0, 2, 3)))
            variances.append(h.var(dim=(0, 2, 3), unbiased=True))  # what BatchNorm keeps
    first = _norms(standing)[0]
    assert torch.allclose(first.running_mean, torch.stack(means).mean(0), atol=1e-6)
    assert torch.allclose(first.running_var, torch.stack(variances).mean(0), atol=1e-5)
    assert int(first.num_batches_tracked) == 3 and first.momentum == _norms(g)[0].momentum
    assert not standing.training and not any(p.requires_grad for p in standing.parameters())


def test_a_copy_deterministic_and_the_global_rng_untouched() -> None:
    g = _generator()
    before = [t.clone() for t in g.state_dict().values()]
    rng = torch.get_rng_state()
    a = standing_statistics(g, batches=2, batch_size=4, seed=3)
    b = standing_statistics(g, batches=2, batch_size=4, seed=3)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(x, y) for x, y in zip(before, g.state_dict().values(), strict=True))
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not torch.equal(_norms(a)[0].running_mean, _norms(g)[0].running_mean)
    assert standing_statistics(g, batches=0, batch_size=4, seed=3) is g  # 0: off


def test_every_per_class_model_and_cbn_generator_gets_its_own_statistics() -> None:
    for overrides in ({"per_class_models": True}, {"g_conditioning": "cbn"}):
        g = _generator(**overrides)
        standing = standing_statistics(g, batches=2, batch_size=4, seed=0)
        for old, new in zip(_norms(g), _norms(standing), strict=True):
            assert int(new.num_batches_tracked) == 2 and int(old.num_batches_tracked) == 0
            assert not torch.equal(old.running_mean, new.running_mean)


def test_bad_value_is_a_one_line_error_and_old_runs_keep_copied_statistics() -> None:
    with pytest.raises(UserError, match=r"^--standing-stats -1: must be >= 0"):
        gan_config.GanConfig(standing_stats=-1).validate()
    saved = gan_config.GanConfig(standing_stats=7).to_dict()
    assert gan_config.GanConfig.from_dict(saved).standing_stats == 7
    del saved["standing_stats"]  # a run saved before the option existed
    assert gan_config.GanConfig.from_dict(saved).standing_stats == 0


def test_load_gan_samples_with_standing_statistics_the_checkpoint_keeps_ema_as_trained(
    make_dataset: Callable[..., Path], tmp_path: Path, tiny_gan_config: Callable
) -> None:
    data = make_dataset(tmp_path / "data", "colours", 8, 2)
    cfg = tiny_gan_config(data, tmp_path, iterations=2, fid_samples=0, standing_stats=2)
    train_gan(cfg, progress=False)
    state = load_checkpoint(tmp_path / "g" / "last.pt")
    assert state["config"]["standing_stats"] == 2
    gan = load_gan(tmp_path / "g", "last")
    raw = models.build_generator(cfg, 2)
    raw.load_state_dict(state["G_ema"])  # the checkpoint keeps the EMA generator as trained
    expected = standing_statistics(raw, 2, cfg.batch_size, cfg.seed + STANDING_SEED_OFFSET)
    for key, value in expected.state_dict().items():
        assert torch.equal(gan.generator.state_dict()[key], value), key
    assert not torch.equal(
        _norms(gan.generator)[0].running_mean, _norms(raw)[0].running_mean
    )  # fmt: skip
    manifest = synthesize(
        SynthConfig(gan="g", per_class=3, out=str(tmp_path / "set"), runs_dir=str(tmp_path),
                    checkpoint="last", device="cpu", fid=False),
        progress=False,
    )  # fmt: skip
    assert manifest.standing_stats == 2 and manifest.to_json()["standing_stats"] == 2


def test_a_resumed_run_keeps_its_setting_and_synthesize_may_override_it(
    make_dataset: Callable[..., Path], tmp_path: Path, tiny_gan_config: Callable
) -> None:
    data = make_dataset(tmp_path / "data", "colours", 8, 2)
    first = tiny_gan_config(data, tmp_path, iterations=2, fid_samples=0, standing_stats=0)
    train_gan(first, progress=False)
    more = tiny_gan_config(data, tmp_path, iterations=4, fid_samples=0, standing_stats=3)
    with pytest.raises(UserError, match="standing"):  # every checkpoint says how it is sampled
        train_gan(more, resume=True, progress=False)
    assert load_gan(tmp_path / "g", "last").config.standing_stats == 0
    override = load_gan(tmp_path / "g", "last", standing_stats=3)
    assert override.config.standing_stats == 3
    assert int(_norms(override.generator)[0].num_batches_tracked) == 3
    manifest = synthesize(
        SynthConfig(gan="g", per_class=2, out=str(tmp_path / "set"), runs_dir=str(tmp_path),
                    checkpoint="last", device="cpu", fid=False, standing_stats=3),
        progress=False,
    )  # fmt: skip
    assert manifest.standing_stats == 3
    with pytest.raises(UserError, match="^--standing-stats -2: must be >= 0"):
        SynthConfig(gan="g", standing_stats=-2).validate()
