"""Recipes for synthetic images in `cli train` (issue 10 §1): a synthetic batch on top of the
real-only run's batches, the synthetic loss weight, a teacher's soft targets, auxiliary BatchNorm
for synthetic images, real-only finetune epochs; their records, refusals and exact resume."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from classify.models import ModelConfig, build_model
from classify.models.dual_bn import (
    DualBatchNorm2d,
    add_auxiliary_batchnorm,
    auxiliary_split,
    split_state,
)
from classify.names import RESNET_VARIANTS
from classify.training import optimizer_steps
from classify.training.config import TrainConfig
from classify.training.engine import TrainCallback
from classify.training.run import check_extension
from classify.training.synthetic_exposure import (
    Sizes,
    check_ranks,
    plan_epoch,
    two_part_loss,
    weighted_mean,
)
from classify.training.trainer import TrainInterrupted, train
from classify.training.trainset import build_training_set
from core.data import scan_dataset
from core.errors import UserError
from core.io import load_checkpoint, read_json, read_jsonl

TINY = dict(image_size=32, width=0.0625, batch_size=16, device="cpu", seed=0, epochs=2,
            optimizer="adam")  # fmt: skip


@pytest.fixture(scope="module")
def sets(
    tmp_path_factory: pytest.TempPathFactory, make_dataset: Callable[..., Path]
) -> dict[str, Path]:
    """A "halves" dataset (30 training + 6 validation images) and two synthetic folders of 9
    images each (different pixels, same classes)."""
    base = tmp_path_factory.mktemp("recipes")
    out = {"data": make_dataset(base / "data", "halves")}
    for name, seed in (("gen", 9), ("gen2", 11)):
        out[name] = make_dataset(base / name, "halves", 3, 0, seed=seed) / "train"
    return out


def _cfg(sets: dict[str, Path], runs: Path, name: str, **kw: object) -> TrainConfig:
    base = dict(data=str(sets["data"]), runs_dir=str(runs), name=name, synthetic=str(sets["gen"]))
    return TrainConfig(**{**base, **TINY, **kw})  # type: ignore[arg-type]


INPUTS = optimizer_steps.Steps.inputs


class Spy:
    """Records every ``Steps.inputs`` call of a run: (indices, augmented images, targets)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        real = INPUTS  # not an earlier spy's

        def inputs(trainer: optimizer_steps.Steps, idx: torch.Tensor, generator: torch.Generator):  # type: ignore[no-untyped-def]
            x, target = real(trainer, idx, generator)
            self.calls.append((idx.clone(), x.clone(), target.clone()))
            return x, target

        monkeypatch.setattr(optimizer_steps.Steps, "inputs", inputs)


class StopAt(TrainCallback):
    def __init__(self, epoch: int, batch: int) -> None:
        self.at = (epoch, batch)

    def on_batch_end(self, epoch: int, batch: int, n_batches: int, logs: dict[str, float]) -> None:
        if (epoch, batch) == self.at:
            raise KeyboardInterrupt


def _weights(run: Path, key: str = "model") -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "last.pt")[key]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# --- the batches ------------------------------------------------------------------------------


def test_real_part_is_the_real_only_run_draw_for_draw(
    sets: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --synthetic-batch, each step's real indices and their augmented images are those of
    the run without synthetic images; the synthetic part comes from the pool, cycled."""
    baseline = Spy(monkeypatch)
    base = _cfg(sets, tmp_path, "real", synthetic=None, epochs=1, augment="pad-crop,mixup")
    train(base, progress=False)
    recipe = Spy(monkeypatch)
    train(replace(base, name="b", synthetic=str(sets["gen"]), synthetic_batch=6), progress=False)
    real_calls, syn_calls = recipe.calls[0::2], recipe.calls[1::2]
    assert len(real_calls) == len(baseline.calls) == 2  # the real-only run's steps
    for (idx, x, t), (idx0, x0, t0) in zip(real_calls, baseline.calls, strict=True):
        assert torch.equal(idx, idx0) and torch.equal(x, x0) and torch.equal(t, t0)
    drawn = torch.cat([idx for idx, _, _ in syn_calls])
    assert all(len(idx) == 6 for idx, _, _ in syn_calls)
    assert sorted(drawn[:9].tolist()) == list(range(30, 39))  # each once before any twice
    history = read_jsonl(tmp_path / "b" / "history.jsonl")
    assert history[0]["train_synthetic_loss"] > 0 and "phase" not in history[0]
    config = read_json(tmp_path / "b" / "config.json")
    assert config["synthetic"]["recipe"]["batch"] == 6
    assert (config["real_presentations"], config["synthetic_presentations"]) == (30, 12)


def test_epoch_plans_and_rank_refusals() -> None:
    cfg = TrainConfig(synthetic="s", synthetic_batch=4, batch_size=8, epochs=3)
    sizes = Sizes.of(cfg, n_real=20, n_synthetic=10)
    real_only = replace(cfg, synthetic=None, synthetic_batch=0)
    plain = Sizes.of(real_only, 20, 0)
    for epoch in (1, 2, 3):
        plan, ref = plan_epoch(cfg, sizes, epoch), plan_epoch(real_only, plain, epoch)
        assert all(torch.equal(a, b) for a, b in zip(plan.batches, ref.batches, strict=True))
        assert torch.equal(plan.generator.get_state(), ref.generator.get_state())
        assert plan.synthetic is not None and all(len(s) == 4 for s in plan.synthetic)
    finetune = plan_epoch(replace(cfg, finetune_real_epochs=1), sizes, 4)
    assert finetune.phase == "finetune" and finetune.synthetic is None
    assert max(int(b.max()) for b in finetune.batches) < 20
    with pytest.raises(UserError, match="--synthetic-batch 5: .* divide by 2; use 4 or 6"):
        check_ranks(replace(cfg, synthetic_batch=5), 2, sync_bn=False)
    with pytest.raises(UserError, match="--local-bn"):
        check_ranks(replace(cfg, synthetic_bn="separate"), 2, sync_bn=True)
    check_ranks(replace(cfg, synthetic_bn="separate"), 2, sync_bn=False)
    check_ranks(replace(cfg, synthetic_batch=5), 1, sync_bn=True)  # one process: anything


# --- the loss ---------------------------------------------------------------------------------


def test_weights_scale_the_synthetic_gradient_and_ranks_add_up() -> None:
    torch.manual_seed(0)
    logits = torch.randn(10, 3, requires_grad=True)
    real_t, syn_t = torch.arange(6) % 3, torch.softmax(torch.randn(4, 3), 1)
    ce = torch.nn.CrossEntropyLoss(reduction="sum")
    grads = {}
    for weight in (0.0, 1.0, 2.0):
        logits.grad = None
        loss, _, _ = two_part_loss(ce, logits, real_t, syn_t, real_total=6, synthetic_total=4,
                                   weight=weight)  # fmt: skip
        loss.backward()
        grads[weight] = logits.grad.clone()
    assert torch.equal(grads[0.0][6:], torch.zeros(4, 3))  # W = 0: no synthetic gradient
    assert torch.allclose(grads[0.0][:6], grads[1.0][:6])
    assert torch.allclose(grads[2.0][6:], 2 * grads[1.0][6:])
    # Two ranks holding contiguous parts: their losses (each x 2, DDP averages) sum to the global.
    full, _, _ = two_part_loss(ce, logits, real_t, syn_t, real_total=6, synthetic_total=4,
                               weight=0.5)  # fmt: skip
    parts = [(slice(0, 3), slice(0, 2)), (slice(3, 6), slice(2, 4))]
    local = [
        two_part_loss(ce, torch.cat([logits[:6][r], logits[6:][s]]), real_t[r], syn_t[s],
                      real_total=6, synthetic_total=4, weight=0.5)[0] * 2
        for r, s in parts
    ]  # fmt: skip
    assert torch.allclose(sum(local) / 2, full)
    # Mixed batches: per sample, the synthetic ones (index >= n_real) times W.
    per_sample = torch.rand(5, requires_grad=True)
    idx = torch.tensor([0, 31, 2, 35, 4])
    weighted_mean(per_sample, idx, n_real=30, weight=0.0).backward()
    assert torch.allclose(per_sample.grad, torch.tensor([0.2, 0.0, 0.2, 0.0, 0.2]))
    assert torch.allclose(weighted_mean(per_sample, idx, 30, 1.0), per_sample.mean())


def test_mixed_batch_weight_changes_the_run(sets: dict[str, Path], tmp_path: Path) -> None:
    base = _cfg(sets, tmp_path, "w1", epochs=1)
    train(base, progress=False)
    train(replace(base, name="w0", synthetic_weight=0.0), progress=False)
    a, b = _weights(tmp_path / "w1"), _weights(tmp_path / "w0")
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert read_json(tmp_path / "w0" / "config.json")["synthetic"]["recipe"]["weight"] == 0.0


# --- auxiliary BatchNorm ------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(RESNET_VARIANTS))
def test_dual_bn_routes_synthetic_rows_and_saves_a_plain_state_dict(name: str) -> None:
    torch.manual_seed(0)
    config = ModelConfig(name=name, num_classes=3, image_size=16, width=0.0625)
    plain = build_model(config)
    model = add_auxiliary_batchnorm(copy.deepcopy(plain))
    norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert sum(isinstance(m, DualBatchNorm2d) for m in model.modules()) == norms
    real, syn, other = (torch.rand(4, 3, 16, 16) * 2 - 1 for _ in range(3))
    with auxiliary_split(model, 4):
        out = model(torch.cat([real, syn]))
        again = model(torch.cat([real, other]))
    assert torch.allclose(out[:4], again[:4], atol=1e-6)  # real rows ignore the synthetic ones
    # One forward: the main running statistics are those of the real images alone.
    fresh = add_auxiliary_batchnorm(copy.deepcopy(plain))
    with auxiliary_split(fresh, 4):
        loss = torch.nn.functional.cross_entropy(fresh(torch.cat([real, syn])), torch.arange(8) % 3)
    plain(real)
    main, aux = split_state(fresh)
    for key, value in plain.state_dict().items():
        if "running" in key:
            assert torch.allclose(main[key], value, atol=1e-6), key
    assert aux and all(".aux." in k or k.startswith("aux.") for k in aux)
    loss.backward()
    assert all(p.grad is not None for p in fresh.parameters())  # aux params learn too
    torch.optim.SGD(fresh.parameters(), lr=0.1).step()
    build_model(config).load_state_dict(split_state(fresh)[0])  # strict, plain model


def test_separate_bn_with_weight_zero_ignores_the_synthetic_pixels(
    sets: dict[str, Path], tmp_path: Path
) -> None:
    """Synthetic rows go through the auxiliary BatchNorms and carry weight 0: the main weights
    are the same whichever synthetic images were drawn (shared BN would mix their statistics)."""
    cfg = _cfg(sets, tmp_path, "s1", epochs=1, synthetic_batch=4, synthetic_bn="separate",
               synthetic_weight=0.0)  # fmt: skip
    train(cfg, progress=False)
    train(replace(cfg, name="s2", synthetic=str(sets["gen2"])), progress=False)
    _same(_weights(tmp_path / "s1"), _weights(tmp_path / "s2"))
    aux1, aux2 = _weights(tmp_path / "s1", "aux_bn"), _weights(tmp_path / "s2", "aux_bn")
    assert any(not torch.equal(aux1[k], aux2[k]) for k in aux1 if "running_mean" in k)
    shared = replace(cfg, name="h1", synthetic_bn="shared")
    train(shared, progress=False)
    train(replace(shared, name="h2", synthetic=str(sets["gen2"])), progress=False)
    h1, h2 = _weights(tmp_path / "h1"), _weights(tmp_path / "h2")
    assert any(not torch.equal(h1[k], h2[k]) for k in h1)  # shared statistics: they matter


# --- teacher ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def teacher(
    tmp_path_factory: pytest.TempPathFactory, make_run: Callable[..., Path], sets: dict[str, Path]
) -> Path:
    """A tiny real-trained run on the "halves" classes at 32 px (conftest's make_run)."""
    return make_run(tmp_path_factory.mktemp("teacher"), sets["data"], name="teacher")


def test_teacher_targets_are_softened_probabilities(
    sets: dict[str, Path], teacher: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from classify.checkpoint import load_classifier

    spy = Spy(monkeypatch)
    cfg = _cfg(sets, tmp_path, "kd", epochs=1, synthetic_batch=4, synthetic_labels="teacher",
               teacher=str(teacher), temperature=3.0)  # fmt: skip
    train(cfg, progress=False)
    idx, _, target = spy.calls[1]  # the first synthetic part (no mix: the targets as they are)
    images = build_training_set(cfg, scan_dataset(sets["data"])).train.images[idx]
    logits = load_classifier(teacher, device="cpu").predict_logits(images)
    assert target.shape == (4, 3) and torch.allclose(target.sum(1), torch.ones(4))
    assert torch.allclose(target, torch.softmax(logits / 3.0, 1), atol=1e-6)
    assert target.max() < 1 - 1e-3  # softened: no sample taught as certain
    recipe = read_json(tmp_path / "kd" / "config.json")["synthetic"]["recipe"]
    assert 0 <= recipe["teacher"]["agreement"] <= 1 and recipe["temperature"] == 3.0
    # Mixed batches with a mix: soft targets throughout (real rows one-hot), mixed, summing to 1.
    spy.calls.clear()
    train(replace(cfg, name="kd-mix", synthetic_batch=0, augment="pad-crop,cutmix"), progress=False)
    assert all(t.ndim == 2 and torch.allclose(t.sum(1), torch.ones(len(t))) for *_, t in spy.calls)


def test_teacher_of_other_classes_or_size_is_refused(
    sets: dict[str, Path], teacher: Path, tmp_path: Path, make_dataset: Callable[..., Path]
) -> None:
    cfg = _cfg(sets, tmp_path, "t", epochs=1, synthetic_labels="teacher", teacher=str(teacher))
    with pytest.raises(UserError, match=r"--teacher .*trained at 32 px.*--image-size 16") as err:
        train(replace(cfg, image_size=16), progress=False)
    assert "\n" not in str(err.value)
    shapes = make_dataset(tmp_path / "shapes", "shapes", 4, 1)
    other = replace(cfg, name="t2", data=str(shapes), synthetic=str(shapes / "train"))
    with pytest.raises(UserError, match=r"--teacher .*trained on classes"):
        train(other, progress=False)


# --- finetune phase and exact resume ------------------------------------------------------------


def test_finetune_epochs_use_real_images_at_the_finetune_lr(
    sets: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy(monkeypatch)
    cfg = _cfg(sets, tmp_path, "ft", epochs=1, epoch_size=20, finetune_real_epochs=2)
    lrs: list[tuple[int, float]] = []

    class Lr(TrainCallback):
        def on_batch_end(self, epoch: int, batch: int, n: int, logs: dict[str, float]) -> None:
            lrs.append((epoch, logs["lr"]))

    result = train(cfg, progress=False, callbacks=[Lr()])
    history = read_jsonl(tmp_path / "ft" / "history.jsonl")
    assert [(r["epoch"], r["phase"]) for r in history] == [(1, "main"), (2, "finetune"),
                                                          (3, "finetune")]  # fmt: skip
    finetune_lr = 0.01 * cfg.learning_rate
    assert all(lr == finetune_lr for epoch, lr in lrs if epoch > 1)
    assert all(lr != finetune_lr for epoch, lr in lrs if epoch == 1)
    steps_main = 2  # 20 of the 39 images per main epoch, batches of 16
    finetune_idx = torch.cat([idx for idx, _, _ in spy.calls[steps_main:]])
    assert len(finetune_idx) == 2 * 20 and int(finetune_idx.max()) < 30  # real only
    config = read_json(tmp_path / "ft" / "config.json")
    main_idx = torch.cat([idx for idx, _, _ in spy.calls[:steps_main]])
    assert config["real_presentations"] == int((main_idx < 30).sum()) + 40
    assert config["synthetic_presentations"] == int((main_idx >= 30).sum())
    assert config["optimizer_steps"] == 2 + 2 * 2 and result.epochs == 3
    # best.pt: the best validation accuracy over every epoch, main and finetune alike (the one
    # rule of every arm), ties keeping the earlier epoch.
    vals = [r["val_acc"] for r in history]
    best = vals.index(max(vals)) + 1
    assert result.best_epoch == best and result.best_val_acc == vals[best - 1]
    assert torch.load(tmp_path / "ft" / "best.pt", weights_only=False)["epoch"] == best


def test_a_real_only_run_takes_the_finetune_phase_too(
    sets: dict[str, Path], tmp_path: Path
) -> None:
    """The study's ``real:finetune`` control: no synthetic set, the same real-only phase after."""
    cfg = _cfg(sets, tmp_path, "rft", synthetic=None, epochs=1, finetune_real_epochs=1)
    result = train(cfg, progress=False)
    history = read_jsonl(tmp_path / "rft" / "history.jsonl")
    assert [(r["epoch"], r["phase"]) for r in history] == [(1, "main"), (2, "finetune")]
    config = read_json(tmp_path / "rft" / "config.json")
    assert (config["real_presentations"], config["synthetic_presentations"]) == (2 * 30, 0)
    vals = [r["val_acc"] for r in history]
    assert result.best_epoch == vals.index(max(vals)) + 1  # over both phases, as for every run


@pytest.fixture(scope="module")
def recipe_ref(sets: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> TrainConfig:
    """An uninterrupted run: synthetic batch, separate BN, a mix, then a finetune epoch."""
    runs = tmp_path_factory.mktemp("recipe-ref")
    cfg = _cfg(sets, runs, "ref", epochs=1, synthetic_batch=4, synthetic_bn="separate",
               synthetic_weight=0.5, augment="pad-crop,mixup", finetune_real_epochs=1)  # fmt: skip
    train(cfg, progress=False)
    return cfg


@pytest.mark.parametrize("stop", [(1, 1), (2, 1)], ids=["main", "finetune"])
def test_resume_is_exact_with_synthetic_batch_separate_bn_and_finetune(
    recipe_ref: TrainConfig, tmp_path: Path, stop: tuple[int, int]
) -> None:
    from classify.checkpoint import load_classifier

    cfg = replace(recipe_ref, runs_dir=str(tmp_path), name="cut")
    with pytest.raises(TrainInterrupted):
        train(cfg, progress=False, callbacks=[StopAt(*stop)])
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["position"]["batch"] == 1
    train(cfg, resume=True, progress=False)
    ref = Path(recipe_ref.runs_dir) / "ref"
    _same(_weights(ref), _weights(tmp_path / "cut"))
    _same(_weights(ref, "aux_bn"), _weights(tmp_path / "cut", "aux_bn"))
    strip = ("seconds", "images_per_second")
    histories = [
        [{k: v for k, v in r.items() if k not in strip} for r in read_jsonl(p / "history.jsonl")]
        for p in (ref, tmp_path / "cut")
    ]
    assert histories[0] == histories[1]
    load_classifier(tmp_path / "cut")  # a plain state dict under "model"
    with pytest.raises(UserError, match="finetune-real-epochs phase, and cannot be extended"):
        train(replace(cfg, epochs=2), resume=True, progress=False)


def test_extension_is_allowed_before_the_finetune_phase() -> None:
    saved = TrainConfig(epochs=2, finetune_real_epochs=1)
    more = replace(saved, epochs=3)
    check_extension(saved, more, {"epoch": 2, "position": None}, Path("r"))
    check_extension(saved, more, {"epoch": 1, "position": {"epoch": 2}}, Path("r"))
    with pytest.raises(UserError, match="cannot be extended"):
        check_extension(saved, more, {"epoch": 2, "position": {"epoch": 3}}, Path("r"))


# --- refusals and the command line --------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(synthetic_batch=-1), "--synthetic-batch -1: must be >= 0"),
        (dict(synthetic_weight=-0.5), "--synthetic-weight -0.5: must be >= 0"),
        (dict(temperature=0.0), "--temperature 0.0: must be > 0"),
        (dict(finetune_real_epochs=-1), "--finetune-real-epochs -1: must be >= 0"),
        (dict(finetune_lr=0.0), "--finetune-lr 0.0: must be > 0"),
        (dict(synthetic=None, synthetic_batch=4), "need --synthetic DIR"),
        (dict(synthetic_labels="teacher"), "needs --teacher RUN_DIR"),
        (dict(teacher="runs/t"), "--teacher: only used with --synthetic-labels teacher"),
        (dict(synthetic_bn="separate"), "--synthetic-bn separate: needs --synthetic-batch >= 2"),
        (dict(synthetic_bn="separate", synthetic_batch=4, model="vit-tiny"), "has no BatchNorm"),
        (dict(synthetic_batch=4, train_on="synthetic"), "needs --train-on real"),
        (dict(synthetic_labels="soft"), "--synthetic-labels 'soft': choose one of hard, teacher"),
    ],
)
def test_bad_recipe_settings_are_one_line_errors(change: dict, message: str) -> None:
    with pytest.raises(UserError) as err:
        replace(TrainConfig(synthetic="s"), **change).validate()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cli_train_takes_the_recipe_options(sets: dict[str, Path], tmp_path: Path) -> None:
    from cli import app

    base = ["train", "--data", str(sets["data"]), "--runs-dir", str(tmp_path), "--image-size",
            "32", "--width", "0.0625", "--batch-size", "16", "--device", "cpu", "--epochs", "1",
            "--synthetic", str(sets["gen"]), "--no-progress"]  # fmt: skip
    args = [*base, "--name", "c", "--synthetic-batch", "4", "--synthetic-weight", "0.5",
            "--synthetic-bn", "separate", "--finetune-real-epochs", "1", "--finetune-lr", "0.002"]  # fmt: skip
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    saved = read_json(tmp_path / "c" / "config.json")
    recipe = saved["synthetic"]["recipe"]
    assert (recipe["batch"], recipe["weight"], recipe["bn"]) == (4, 0.5, "separate")
    assert (recipe["finetune_real_epochs"], recipe["finetune_lr"]) == (1, 0.002)
    resumed = CliRunner().invoke(app, ["train", "--runs-dir", str(tmp_path), "--name", "c",
                                       "--resume", "--no-progress"])  # fmt: skip
    assert resumed.exit_code == 0, resumed.output  # the recipe came back from the checkpoint
    changed = CliRunner().invoke(app, ["train", "--runs-dir", str(tmp_path), "--name", "c",
                                       "--resume", "--synthetic-batch", "8"])  # fmt: skip
    assert changed.exit_code == 2 and "synthetic_batch (saved 4, given 8)" in changed.output
    too_big = CliRunner().invoke(app, [*base, "--name", "c2", "--synthetic-batch", "20"])
    assert too_big.exit_code == 2 and "the synthetic set has 9 images" in too_big.output
    assert json.dumps(saved)  # config.json stays plain JSON
