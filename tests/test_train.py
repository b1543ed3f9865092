"""Classifier training: augmentation, run folder, exact resume, refusals, the `train` command."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from classify.classical.apply import augment_batch
from classify.classical.crops import CROP_TRANSFORMS, pad_crop, resized_crop_params
from classify.models import ModelConfig, build_model
from classify.names import CROPS, OPTIMIZERS, SCHEDULERS
from classify.training.config import TrainConfig
from classify.training.engine import TrainCallback
from classify.training.optim import (
    OPTIMIZER_BUILDERS,
    SCHEDULES,
    apply_schedule,
    build_optimizer,
    build_scheduler,
    cosine_factor,
    onecycle_factor,
)
from classify.training.trainer import TrainInterrupted, train
from core.errors import UserError
from core.interrupts import InterruptGuard
from core.io import load_checkpoint, read_json, read_jsonl, save_checkpoint

TINY = dict(image_size=32, width=0.0625, batch_size=16, device="cpu", seed=3)


# --- augmentation ------------------------------------------------------------------------------


def _batch(n: int = 6, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("policy", list(CROP_TRANSFORMS))
@pytest.mark.parametrize("hflip", [True, False])
def test_augmentation_keeps_shape_dtype_and_is_deterministic(policy: str, hflip: bool) -> None:
    images = _batch()
    a = augment_batch(images, policy, hflip=hflip, generator=torch.Generator().manual_seed(1))
    b = augment_batch(images, policy, hflip=hflip, generator=torch.Generator().manual_seed(1))
    c = augment_batch(images, policy, hflip=hflip, generator=torch.Generator().manual_seed(2))
    assert a.shape == images.shape and a.dtype == torch.uint8 and a.device == images.device
    assert torch.equal(a, b)
    if policy == "none" and not hflip:
        assert torch.equal(a, images)
    else:
        assert not torch.equal(a, c)


def test_pad_crop_is_an_integer_shift_with_zero_fill() -> None:
    images = _batch(n=16)  # values >= 1, so zeros can only come from the padding
    out = pad_crop(images, torch.Generator().manual_seed(0))
    pad, size = 32 // 8, 32
    shifts = []
    for src, dst in zip(images, out, strict=True):
        found = None
        for dy in range(-pad, pad + 1):
            for dx in range(-pad, pad + 1):
                expect = torch.zeros_like(src)
                ys, yd = (
                    slice(max(0, -dy), size - max(0, dy)),
                    slice(max(0, dy), size - max(0, -dy)),
                )
                xs, xd = (
                    slice(max(0, -dx), size - max(0, dx)),
                    slice(max(0, dx), size - max(0, -dx)),
                )
                expect[:, yd, xd] = src[:, ys, xs]
                if torch.equal(dst, expect):
                    found = (dy, dx)
        assert found is not None
        shifts.append(found)
    assert len(set(shifts)) > 1  # not the same shift for everyone


def test_resized_crop_stays_inside_the_image() -> None:
    theta = resized_crop_params(500, torch.Generator().manual_seed(0))
    w, h, cx, cy = theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2]
    assert (w <= 1).all() and (h <= 1).all()
    assert ((w * h) >= 0.6 - 1e-6).all()  # a side clamped to 1 still leaves >= 3/4 of the area
    assert (w / h).min() < 0.8 and (w / h).max() > 1.25  # the aspect range is used
    assert (cx.abs() <= 1 - w + 1e-6).all() and (cy.abs() <= 1 - h + 1e-6).all()


def test_registries_match_config_choices() -> None:
    assert tuple(CROP_TRANSFORMS) == CROPS
    assert tuple(OPTIMIZER_BUILDERS) == OPTIMIZERS
    assert tuple(SCHEDULES) == SCHEDULERS


def test_defaults_are_adamw_and_sgd_brings_its_own_lr_and_decay() -> None:
    model = build_model(ModelConfig("resnet50", 3, 32, 0.0625))
    default = build_optimizer(model, TrainConfig())
    assert type(default).__name__ == "AdamW"
    assert default.param_groups[0]["lr"] == 2e-3 and default.param_groups[0]["weight_decay"] == 0.05
    sgd = build_optimizer(model, TrainConfig(optimizer="sgd"))
    assert type(sgd).__name__ == "SGD"
    assert sgd.param_groups[0]["lr"] == 0.1 and sgd.param_groups[0]["weight_decay"] == 5e-4
    # An explicit value equal to the default is the same setting (resume and the study agree).
    explicit = TrainConfig(lr=2e-3, weight_decay=0.05)
    assert all(explicit.resolved(k) == TrainConfig().resolved(k) for k in ("lr", "weight_decay"))
    assert TrainConfig(optimizer="sgd").resolved("weight_decay") != TrainConfig().resolved(
        "weight_decay"
    )


def test_no_weight_decay_on_batchnorm_and_biases() -> None:
    model = build_model(ModelConfig("resnet50-se", 3, 32, 0.0625))
    decay, no_decay = build_optimizer(model, TrainConfig(weight_decay=0.1)).param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(
        p.ndim <= 1 for p in no_decay["params"]
    )
    exempt = {id(p) for p in no_decay["params"]}
    assert id(model.fc.bias) in exempt and id(model.bn1.weight) in exempt


def test_onecycle_matches_torch() -> None:
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    ref = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=1.0, total_steps=100, cycle_momentum=False
    )
    for step in range(100):
        assert onecycle_factor(step, 100, 0) == pytest.approx(opt.param_groups[0]["lr"], rel=0.05)
        opt.step()
        ref.step()


def test_extended_schedule_continues_from_the_saved_step() -> None:
    def make(epochs: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
        return opt, build_scheduler(opt, TrainConfig(epochs=epochs, warmup_epochs=0), 5)

    opt, sched = make(2)
    for _ in range(10):  # two epochs of five steps: the cosine has reached zero
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    opt4, sched4 = make(4)
    opt4.load_state_dict(opt.state_dict())
    sched4.load_state_dict(sched.state_dict())
    apply_schedule(sched4)
    assert opt4.param_groups[0]["lr"] == pytest.approx(0.1 * cosine_factor(10, 20, 0))
    assert opt4.param_groups[0]["lr"] == pytest.approx(0.05)


@pytest.fixture
def default_sigint() -> object:
    """SIGINT raising KeyboardInterrupt during the test, whatever the test runner inherited (a
    background CI job starts with SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_interrupt_guard_defers_the_first_ctrl_c(default_sigint: object) -> None:
    reached = False
    with InterruptGuard() as guard:
        with pytest.raises(KeyboardInterrupt), guard.critical():
            os.kill(os.getpid(), signal.SIGINT)  # recorded, raised only when the section ends
            reached = True
        assert reached and not guard.pending and not guard.dirty
        with pytest.raises(KeyboardInterrupt), guard.critical():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # the second one stops at once
            reached = False
        assert reached and guard.dirty
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_interrupt_guard_leaves_an_ignored_sigint_ignored() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with InterruptGuard() as guard, guard.critical():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)  # ignored: nothing pending, nothing raised
        assert not guard.pending and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


# --- training runs -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory, make_dataset: Callable[..., Path]) -> Path:
    return make_dataset(tmp_path_factory.mktemp("shapes") / "data", "shapes")


def _cfg(data: Path, runs: Path, name: str, **kw: object) -> TrainConfig:
    return TrainConfig(data=str(data), runs_dir=str(runs), name=name, **{**TINY, "epochs": 2, **kw})


@pytest.fixture(scope="module")
def reference(shapes: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted 2-epoch run that the resumed runs must reproduce exactly."""
    runs = tmp_path_factory.mktemp("runs")
    train(_cfg(shapes, runs, "ref"), progress=False)
    return runs / "ref"


class StopAt(TrainCallback):
    """Simulated Ctrl-C after batch ``batch`` of ``epoch`` (or at the end of ``epoch``)."""

    def __init__(self, epoch: int, batch: int | None = None) -> None:
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, epoch: int, batch: int, n_batches: int, logs: dict[str, float]) -> None:
        if (epoch, batch) == (self.epoch, self.batch):
            raise KeyboardInterrupt

    def on_epoch_end(self, record: dict) -> None:
        if self.batch is None and record["epoch"] == self.epoch:
            raise KeyboardInterrupt


def _assert_same_weights(a: Path, b: Path) -> None:
    sa, sb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_run_folder_contents(shapes: Path, reference: Path) -> None:
    assert sorted(p.name for p in reference.iterdir()) == [
        "best.pt", "config.json", "history.jsonl", "last.pt", "split.json"
    ]  # fmt: skip
    config = read_json(reference / "config.json")
    assert {"train", "model", "class_names", "dataset", "synthetic", "versions", "created"} <= set(
        config
    )
    assert config["class_names"] == ["circle", "square", "triangle"]
    assert config["dataset"]["n_train"] + config["dataset"]["n_val"] == 36
    assert config["dataset"]["n_val"] == 6 and config["synthetic"] is None
    assert config["dataset"]["split"] == {"seed": 0, "val_fraction": 0.15, "held_out": True,
                                          "n_trained_on": 30}  # fmt: skip
    assert TrainConfig.from_dict(config["train"]) == _cfg(shapes, reference.parent, "ref")

    history = read_jsonl(reference / "history.jsonl")
    assert [r["epoch"] for r in history] == [1, 2]
    keys = {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds",
            "images_per_second"}  # fmt: skip
    assert all(set(r) == keys for r in history)

    last, best = load_checkpoint(reference / "last.pt"), load_checkpoint(reference / "best.pt")
    assert last["format"] == "shoegan-classifier/1" and last["epoch"] == 2
    assert last["position"] is None and last["class_names"] == config["class_names"]
    accs = [r["val_acc"] for r in history]
    assert last["best_epoch"] == accs.index(max(accs)) + 1 == best["epoch"]
    assert last["best_val_acc"] == max(accs) == best["val_acc"]
    assert all(v.device.type == "cpu" for v in last["model"].values())
    model = build_model(ModelConfig.from_dict(last["model_config"]))
    model.load_state_dict(last["model"])  # rebuilt from the file alone
    assert {"python", "numpy", "torch"} <= set(last["rng"])


def test_train_never_reads_the_test_split(
    shapes: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tree_digest: Callable[[Path], str],
) -> None:
    import core.data

    seen: list[Path] = []
    real = core.data.decode_image
    monkeypatch.setattr(core.data, "decode_image", lambda p, *a: seen.append(p) or real(p, *a))
    before = tree_digest(shapes)
    train(_cfg(shapes, tmp_path, "t", epochs=1), progress=False)
    assert len(seen) == 36 and all(p.parent.parent.name == "train" for p in seen)
    assert tree_digest(shapes) == before


def test_resume_after_an_epoch_is_exact(shapes: Path, reference: Path, tmp_path: Path) -> None:
    cfg = _cfg(shapes, tmp_path, "ref")
    with pytest.raises(TrainInterrupted) as stop:
        train(cfg, progress=False, callbacks=[StopAt(epoch=1)])
    assert "--resume" in stop.value.message
    assert load_checkpoint(tmp_path / "ref" / "last.pt")["epoch"] == 1
    result = train(cfg, resume=True, progress=False)
    assert result.epochs == 2
    _assert_same_weights(reference / "last.pt", tmp_path / "ref" / "last.pt")
    ref_hist, hist = (read_jsonl(p / "history.jsonl") for p in (reference, tmp_path / "ref"))
    assert [r["val_loss"] for r in hist] == [r["val_loss"] for r in ref_hist]


def test_resume_mid_epoch_is_exact(shapes: Path, reference: Path, tmp_path: Path) -> None:
    cfg = _cfg(shapes, tmp_path, "ref")
    with pytest.raises(TrainInterrupted) as stop:
        train(cfg, progress=False, callbacks=[StopAt(epoch=2, batch=1)])
    assert stop.value.saved
    saved = load_checkpoint(tmp_path / "ref" / "last.pt")
    assert saved["epoch"] == 1 and saved["position"]["batch"] == 1
    assert len(read_jsonl(tmp_path / "ref" / "history.jsonl")) == 1
    train(cfg, resume=True, progress=False)
    _assert_same_weights(reference / "last.pt", tmp_path / "ref" / "last.pt")
    ref_hist, hist = (read_jsonl(p / "history.jsonl") for p in (reference, tmp_path / "ref"))
    assert [r["train_loss"] for r in hist] == [r["train_loss"] for r in ref_hist]


@pytest.mark.parametrize("augment", ["trivialaugment,mixup", "none,randaugment,cutmix"])
def test_resume_mid_epoch_is_exact_with_a_policy_and_a_mix(
    shapes: Path, tmp_path: Path, augment: str
) -> None:
    """Per-sample policies and mixes draw from the epoch generator only, so a resumed run replays
    them; label smoothing takes the mixed soft targets."""
    cfg = _cfg(shapes, tmp_path, "aug", augment=augment, label_smoothing=0.1)
    train(replace(cfg, name="aug-ref"), progress=False)
    with pytest.raises(TrainInterrupted):
        train(cfg, progress=False, callbacks=[StopAt(epoch=2, batch=1)])
    train(cfg, resume=True, progress=False)
    _assert_same_weights(tmp_path / "aug-ref" / "last.pt", tmp_path / "aug" / "last.pt")
    ref_hist, hist = (read_jsonl(tmp_path / name / "history.jsonl") for name in ("aug-ref", "aug"))
    assert [r["train_loss"] for r in hist] == [r["train_loss"] for r in ref_hist]
    assert [r["train_acc"] for r in hist] == [r["train_acc"] for r in ref_hist]
    assert read_json(tmp_path / "aug" / "config.json")["train"]["augment"] == augment


def test_old_layout_checkpoint_loads_and_resumes(
    shapes: Path, reference: Path, tmp_path: Path
) -> None:
    """Checkpoints written before the layout was shared kept the config under "train_config"."""
    from classify.checkpoint import load_classifier

    run = tmp_path / "old"
    shutil.copytree(reference, run)
    for name in ("last.pt", "best.pt"):
        state = load_checkpoint(run / name)
        state["train_config"] = state.pop("config")
        save_checkpoint(run / name, state)
    assert load_classifier(run, "best").train_config == _cfg(shapes, reference.parent, "ref")
    result = train(_cfg(shapes, tmp_path, "old", epochs=3), resume=True, progress=False)
    assert result.epochs == 3 and [r["epoch"] for r in result.history] == [1, 2, 3]
    assert "config" in load_checkpoint(run / "last.pt")  # written in the new layout


def test_extending_epochs_continues_a_constant_schedule(shapes: Path, tmp_path: Path) -> None:
    two = _cfg(shapes, tmp_path, "two", scheduler="none", model="resnet50-se")
    train(two, progress=False)
    one = replace(two, name="one", epochs=1)
    train(one, progress=False)
    train(replace(one, epochs=2), resume=True, progress=False)
    _assert_same_weights(tmp_path / "two" / "last.pt", tmp_path / "one" / "last.pt")
    assert TrainConfig.from_dict(read_json(tmp_path / "one" / "config.json")["train"]).epochs == 2


def test_synthetic_images_join_the_training_split_only(
    shapes: Path,
    tmp_path: Path,
    make_dataset: Callable[..., Path],
    tree_digest: Callable[[Path], str],
) -> None:
    synthetic = make_dataset(
        tmp_path / "gen", "shapes", train_per_class=3, test_per_class=0, seed=9
    )
    folder = synthetic / "train"  # a synthetic set is <class>/*.png (+ manifest.json)
    (folder / "manifest.json").write_text('{"gan_run": "g", "fid": {"overall": {"fid": 1.0}}}')
    before = tree_digest(folder)
    train(_cfg(shapes, tmp_path, "aug", epochs=1, synthetic=str(folder)), progress=False)
    config = read_json(tmp_path / "aug" / "config.json")
    assert config["dataset"]["n_train"] == 30 and config["dataset"]["n_val"] == 6
    assert config["synthetic"]["counts"] == {"circle": 3, "square": 3, "triangle": 3}
    assert config["synthetic"]["gan_run"] == "g" and config["synthetic"]["manifest_sha256"]
    assert load_checkpoint(tmp_path / "aug" / "last.pt")["data"]["steps_per_epoch"] == 3  # 39 / 16
    assert tree_digest(folder) == before


def test_existing_run_is_refused_and_left_alone(
    shapes: Path, reference: Path, tree_digest: Callable[[Path], str]
) -> None:
    before = tree_digest(reference)
    with pytest.raises(UserError, match="--resume .*--overwrite"):
        train(_cfg(shapes, reference.parent, "ref"), progress=False)
    with pytest.raises(UserError, match="differ: lr"):
        train(_cfg(shapes, reference.parent, "ref", lr=0.5), resume=True, progress=False)
    with pytest.raises(UserError, match="only be extended"):
        train(_cfg(shapes, reference.parent, "ref", epochs=1), resume=True, progress=False)
    assert tree_digest(reference) == before
    last = (reference / "last.pt").read_bytes()
    done = train(_cfg(shapes, reference.parent, "ref"), resume=True, progress=False)
    assert done.epochs == 2 and (reference / "last.pt").read_bytes() == last  # nothing left to do


def test_bad_settings_are_one_line_errors(shapes: Path, tmp_path: Path) -> None:
    for bad, match in [
        ({"model": "vgg"}, "resnet50-cbam"),
        ({"optimizer": "rmsprop"}, "sgd, adam, adamw"),
        ({"epochs": 0}, "--epochs"),
        ({"name": "a/b"}, "--name"),
        ({"runs_dir": str(shapes / "runs")}, "inside the dataset"),
    ]:
        with pytest.raises(UserError, match=match) as err:
            train(replace(_cfg(shapes, tmp_path, "x"), **bad), progress=False)
        assert "\n" not in str(err.value)
    assert not (shapes / "runs").exists()


# --- the command -------------------------------------------------------------------------------


def test_cli_train_end_to_end(
    shapes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli import app

    runner = CliRunner()
    base = ["train", "--data", str(shapes), "--runs-dir", str(tmp_path), "--name", "cbam",
            "--model", "resnet50-cbam", "--image-size", "32", "--width", "0.0625",
            "--batch-size", "16", "--device", "cpu", "--cbam-pool-types", "avg,lse",
            "--augment", "resized-crop", "--no-progress"]  # fmt: skip
    out = runner.invoke(app, [*base, "--epochs", "1"])
    assert out.exit_code == 0, out.output
    assert "best val acc" in out.output
    config = read_json(tmp_path / "cbam" / "config.json")
    assert config["model"]["cbam_pool_types"] == ["avg", "lse"]
    assert config["train"]["augment"] == "resized-crop"

    again = runner.invoke(app, [*base, "--epochs", "1"])
    assert again.exit_code == 2 and "error:" in again.output and "--overwrite" in again.output

    conflict = runner.invoke(app, ["train", "--runs-dir", str(tmp_path), "--name", "cbam",
                                   "--resume", "--lr", "0.5", "--no-progress"])  # fmt: skip
    # (saved 0.002: the default --preset quick sets it)
    assert conflict.exit_code == 2 and "lr (saved 0.002, given 0.5)" in conflict.output

    # A Ctrl-C inside a step (e.g. a second Ctrl-C) must not save a half-updated state.
    import classify.training.engine

    calls = {"n": 0}
    step = classify.training.engine.Trainer.train_step

    def flaky(self: classify.training.engine.Trainer, *a: object) -> tuple[float, int]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return step(self, *a)

    monkeypatch.setattr(classify.training.engine.Trainer, "train_step", flaky)
    extend = ["train", "--runs-dir", str(tmp_path), "--name", "cbam", "--resume", "--epochs", "2",
              "--no-progress"]  # fmt: skip
    stopped = runner.invoke(app, extend)
    assert stopped.exit_code == 130 and "--resume" in stopped.output, stopped.output
    assert load_checkpoint(tmp_path / "cbam" / "last.pt")["position"] is None

    monkeypatch.setattr(classify.training.engine.Trainer, "train_step", step)
    resumed = runner.invoke(app, extend)
    assert resumed.exit_code == 0, resumed.output
    assert [r["epoch"] for r in read_jsonl(tmp_path / "cbam" / "history.jsonl")] == [1, 2]
    assert read_json(tmp_path / "cbam" / "config.json")["train"]["epochs"] == 2


def test_cli_train_preset_with_explicit_overrides(shapes: Path, tmp_path: Path) -> None:
    from cli import app

    args = ["train", "--data", str(shapes), "--runs-dir", str(tmp_path), "--name", "p",
            "--preset", "quick", "--epochs", "1", "--width", "0.0625", "--device", "cpu",
            "--no-progress"]  # fmt: skip
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    saved = TrainConfig.from_dict(read_json(tmp_path / "p" / "config.json")["train"])
    assert (saved.optimizer, saved.lr, saved.image_size) == ("adamw", 2e-3, 32)  # the preset's
    assert (saved.epochs, saved.width) == (1, 0.0625)  # given explicitly
    bad = CliRunner().invoke(app, [*args[:7], "--preset", "slow", "--name", "q"])
    assert bad.exit_code == 2 and "Invalid value for '--preset'" in bad.output
    assert "'slow' is not one of" in bad.output


def test_checkpoints_load_as_weights_only_and_a_pickle_with_code_is_refused(tmp_path: Path) -> None:
    import pickle

    import torch

    from core.io import load_checkpoint, save_checkpoint
    from core.seeding import rng_state, set_rng_state

    state = {"epoch": 3, "rng": rng_state(), "model": {"w": torch.ones(2)}}
    save_checkpoint(tmp_path / "ok.pt", state)
    loaded = load_checkpoint(tmp_path / "ok.pt")
    set_rng_state(loaded["rng"])
    import numpy as np

    first = np.random.random()
    set_rng_state(state["rng"])
    assert np.random.random() == first and torch.equal(loaded["model"]["w"], torch.ones(2))

    class Payload:
        def __reduce__(self) -> tuple:
            return (Path.touch, (tmp_path / "ran",))

    with open(tmp_path / "evil.pt", "wb") as f:
        torch.save({"x": Payload()}, f, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(UserError, match="weights_only=True only"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "ran").exists()  # its code never ran
