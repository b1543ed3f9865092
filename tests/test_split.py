"""The study's validation split: one per study, held out from everything that learns.

Checked by content: the SHA-256 of each image's decoded pixels, computed here from what every
learner was handed, not from the records the code keeps."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from augment.gan.trainer import train_gan
from augment.synthesize import synthesize
from classify.training.config import TrainConfig
from classify.training.trainset import build_training_set
from core.data import ImageTensors, load_samples, scan_dataset
from core.errors import UserError
from core.manifest import MANIFEST, Manifest
from core.split import SPLIT_FILE, SplitRecord, check_learner, read_split, split_train

pytestmark = pytest.mark.usefixtures("private_cache")  # conftest.py


def pixel_hashes(data: ImageTensors) -> set[str]:
    return {hashlib.sha256(image.numpy().tobytes()).hexdigest() for image in data.images}


def _decoded(data: Path, size: int = 32) -> ImageTensors:
    index = scan_dataset(data)
    return load_samples(index.train, index.class_names, size)


def test_the_split_belongs_to_the_split_seed_not_the_training_seed(
    make_dataset: Callable[..., Path], tmp_path: Path
) -> None:
    data = make_dataset(tmp_path / "d", "shapes", train_per_class=20, test_per_class=2)
    cfg = TrainConfig(data=str(data), image_size=32, val_fraction=0.25)
    index = scan_dataset(data)
    vals = {
        (split_seed, seed): build_training_set(
            replace(cfg, seed=seed, split_seed=split_seed), index
        ).val.paths
        for split_seed in (0, 1)
        for seed in (0, 3)
    }
    assert vals[0, 0] == vals[0, 3] and vals[1, 0] == vals[1, 3]
    assert vals[0, 0] != vals[1, 0]
    assert len(vals[0, 0]) == 3 * 5  # a quarter of 20 per class, stratified
    # The same files at another image size: the same parts (the GAN decodes at its own size).
    train16, val16 = split_train(_decoded(data, 16), 0, 0.25)
    assert val16.paths == vals[0, 0]
    assert not set(train16.paths) & set(val16.paths)


@pytest.fixture(scope="module")
def shapes10(
    tmp_path_factory: pytest.TempPathFactory, make_dataset: Callable[..., Path]
) -> ImageTensors:
    """Ten training images of each of three shapes, decoded: a 0.2 split holds out 6."""
    folder = tmp_path_factory.mktemp("shapes10") / "d"
    return _decoded(make_dataset(folder, "shapes", train_per_class=10, test_per_class=2))


def test_a_record_lists_what_was_learned_and_finds_seen_validation_images(
    shapes10: ImageTensors,
) -> None:
    full = shapes10
    train, val = split_train(full, 0, 0.2)
    record = SplitRecord.of(train, seed=0, val_fraction=0.2)
    again = SplitRecord.from_json(json.loads(record.to_bytes()))
    assert again == record and len(record.trained_on) == len(train) == 24
    assert again.summary() == {"seed": 0, "val_fraction": 0.2, "held_out": True,
                               "n_trained_on": 24}  # fmt: skip
    from core.split import seen_validation

    assert seen_validation(record, val) == []
    other_train, _ = split_train(full, 1, 0.2)
    other = SplitRecord.of(other_train, seed=1, val_fraction=0.2)
    seen = seen_validation(other, val)
    assert seen and set(seen) <= set(val.paths) & set(other_train.paths)
    everything = SplitRecord.of(full, seed=None, val_fraction=0.0, held_out=False)
    assert seen_validation(everything, val) == val.paths
    assert "--use-all-train" in everything.describe()
    union = record.union(other)
    assert union.trained_on == record.trained_on | other.trained_on and union.seed is None


def test_a_teacher_or_filter_that_saw_the_validation_split_is_refused(
    shapes10: ImageTensors, tmp_path: Path
) -> None:
    full = shapes10
    _, val = split_train(full, 0, 0.2)
    run = tmp_path / "teacher"
    run.mkdir()
    with pytest.warns(UserWarning, match="no split.json"):
        check_learner("--teacher", run, val, "split seed 0, validation fraction 0.2")
    other, _ = split_train(full, 1, 0.2)
    (run / SPLIT_FILE).write_bytes(SplitRecord.of(other, seed=1, val_fraction=0.2).to_bytes())
    with pytest.raises(UserError, match=r"^--teacher .*teacher: trained on \d+ of this run's 6 "
                       r"validation images .* its split: split seed 1, .* this run's: split "
                       r"seed 0"):  # fmt: skip
        check_learner("--teacher", run, val, "split seed 0, validation fraction 0.2")


@pytest.fixture(scope="module")
def gan_sets(
    tmp_path_factory: pytest.TempPathFactory,
    make_dataset: Callable[..., Path],
    tiny_gan_config: Callable,
) -> dict[str, Path]:
    """Synthetic sets from GANs that held out split seed 0, split seed 1, and nothing."""
    root = tmp_path_factory.mktemp("split-gans")
    data = make_dataset(root / "data", "shapes", train_per_class=10, test_per_class=2)
    runs, out = root / "runs", {"data": data, "runs": root / "runs"}
    from augment.gan.config import SynthConfig

    for name, extra in (("s0", {}), ("s1", {"split_seed": 1}), ("all", {"use_all_train": True})):
        cfg = tiny_gan_config(data, runs, name=name, iterations=2, eval_every=2, fid_samples=0,
                              val_fraction=0.2, **extra)  # fmt: skip
        train_gan(cfg, progress=False)
        synth = SynthConfig(gan=name, per_class=3, out=str(root / "synthetic" / name),
                            runs_dir=str(runs), device="cpu", batch_size=3, fid=False)  # fmt: skip
        synthesize(synth, progress=False)
        out[name] = root / "synthetic" / name
    return out


def test_the_gan_learns_from_the_training_part_only_and_says_so(gan_sets: dict) -> None:
    full = _decoded(gan_sets["data"])
    train, val = split_train(full, 0, 0.2)
    manifest = Manifest.read(gan_sets["s0"] / MANIFEST)
    assert manifest.split is not None and manifest.split.held_out
    assert manifest.split == read_split(gan_sets["runs"] / "s0")
    assert (manifest.split.seed, manifest.split.val_fraction) == (0, 0.2)
    assert len(manifest.split.trained_on) == len(train)
    config = json.loads((gan_sets["runs"] / "s0" / "config.json").read_text())
    assert config["dataset"]["n_train"] == len(train) == 24
    assert config["dataset"]["split"]["seed"] == 0
    everything = Manifest.read(gan_sets["all"] / MANIFEST).split
    assert everything is not None and not everything.held_out
    assert len(everything.trained_on) == len(full)


def _train_cfg(gan_sets: dict, synthetic: str, **kw: object) -> TrainConfig:
    return TrainConfig(data=str(gan_sets["data"]), image_size=32, val_fraction=0.2,
                       synthetic=str(gan_sets[synthetic]), **kw)  # type: ignore[arg-type]  # fmt: skip


def test_training_on_a_set_whose_generator_saw_the_validation_split_is_refused(
    gan_sets: dict, tmp_path: Path
) -> None:
    index = scan_dataset(gan_sets["data"])
    ok = build_training_set(_train_cfg(gan_sets, "s0"), index)
    assert ok.synthetic is not None and ok.synthetic["split"]["validation_seen"] == 0
    with pytest.raises(UserError, match="split seed 1, validation fraction 0.2, this run's: "
                       "split seed 0, validation fraction 0.2"):  # fmt: skip
        build_training_set(_train_cfg(gan_sets, "s1"), index)
    # the same set is fine for a study whose split is the generator's
    build_training_set(_train_cfg(gan_sets, "s1", split_seed=1), index)
    with pytest.warns(UserWarning, match="--use-all-train"):
        loud = build_training_set(_train_cfg(gan_sets, "all"), index)
    assert loud.synthetic is not None and loud.synthetic["split"]["held_out"] is False
    assert loud.synthetic["split"]["validation_seen"] == len(loud.val)
    from cli import app

    args = ["train", "--data", str(gan_sets["data"]), "--synthetic", str(gan_sets["s1"]),
            "--runs-dir", str(tmp_path / "runs"), "--name", "leaky", "--epochs", "1",
            "--image-size", "32", "--width", "0.0625", "--val-fraction", "0.2",
            "--device", "cpu", "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --synthetic ")
    assert "its generator or filter trained on" in lines[0]
    assert not (tmp_path / "runs" / "leaky" / "last.pt").exists()


@pytest.mark.slow
def test_no_learner_of_a_study_sees_a_validation_image(
    tmp_path: Path, make_dataset: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every seed's classifiers, the generator, the teacher and the CAS classifier of a tiny study:
    no validation image's pixels are among any of their training images."""
    import augment.gan.trainer as gan_trainer
    import classify.training.trainer as trainer
    from core.distributed import DistConfig
    from study.pipeline.arms import parse_arms
    from study.pipeline.config import PipelineConfig
    from study.pipeline.runner import run_pipeline

    learned: dict[str, set[str]] = {}
    validated: dict[str, set[str]] = {}
    build, load = trainer.build_training_set, gan_trainer._load

    def spy_build(cfg: TrainConfig, *args: object, **kw: object) -> object:
        ts = build(cfg, *args, **kw)
        learned[cfg.name] = pixel_hashes(ts.train.subset(torch.arange(ts.n_real)))
        validated[cfg.name] = pixel_hashes(ts.val)
        return ts

    def spy_load(cfg: object, *args: object) -> object:
        data, split, root = load(cfg, *args)
        learned["gan"] = pixel_hashes(data)
        return data, split, root

    monkeypatch.setattr(trainer, "build_training_set", spy_build)
    monkeypatch.setattr(gan_trainer, "_load", spy_load)
    data = make_dataset(tmp_path / "shapes", "shapes", train_per_class=10, test_per_class=3)
    cfg = PipelineConfig(
        data=str(data), seeds=2, models=("resnet50",), arms=parse_arms("real,real+gan:teacher",
        "separate"), runs_dir=str(tmp_path / "runs"), synthetic_dir=str(tmp_path / "synthetic"),
        reports_dir=str(tmp_path / "reports"), device="cpu", per_class=4, cam_per_class=1,
        classifier={"epochs": 1, "width": 0.0625, "image_size": 32},
        gan={"iterations": 2, "eval_every": 2, "ngf": 8, "ndf": 8},
        feature_extractor="random-conv", split_seed=3,
    )  # fmt: skip
    run_pipeline(cfg, DistConfig())
    classifiers = sorted(n for n in validated if n != "gan")
    assert any("cas" in n for n in classifiers) and any("teacher" in n for n in classifiers)
    assert len({frozenset(validated[n]) for n in classifiers}) == 1  # one split for the study
    val = validated[classifiers[0]]
    assert val and learned["gan"]
    for name, images in learned.items():
        assert not images & val, f"{name} trained on validation images"
    for name in classifiers:
        config = json.loads((tmp_path / "runs" / name / "config.json").read_text())
        assert config["train"]["split_seed"] == 3


def test_a_copy_on_each_side_of_the_split_is_trained_on_and_said(
    make_dataset: Callable[..., Path], tmp_path: Path
) -> None:
    import shutil

    data = make_dataset(tmp_path / "d", "shapes", train_per_class=10, test_per_class=2)
    plain_train, plain_val = split_train(_decoded(data), 0, 0.2)
    # A training image of another class becomes a byte-identical copy of a validation image
    # (same files and labels, so the stratified split itself is unchanged).
    victim = Path(plain_val.paths[0])
    copy = next(Path(p) for p in plain_train.paths if Path(p).parent != victim.parent)
    shutil.copy(victim, copy)
    with pytest.warns(UserWarning, match=r"1 validation image\(s\) have a byte-identical copy"):
        train, val = split_train(_decoded(data), 0, 0.2)
    assert pixel_hashes(train).isdisjoint(pixel_hashes(val))
    assert str(victim) in train.paths and val.paths == plain_val.paths[1:]
    assert train.paths == sorted(plain_train.paths + [str(victim)], key=_decoded(data).paths.index)
