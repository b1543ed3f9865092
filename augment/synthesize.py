"""Write a synthetic training set from a trained GAN: ``synthetic/NAME/<class>/NNNNNN.png`` plus a
self-describing ``manifest.json``.

Deterministic: class ``c``'s noise comes from a generator seeded by ``(seed, c)`` and the EMA
generator runs in eval mode, so the same seed (and batch size) gives byte-identical PNGs. Everything
is written to a hidden temporary sibling folder that is renamed into place at the end, so an
interrupted run leaves no half-written set. The manifest scores the set the way a user should read
it: per-class FID/KID of the synthetic images against the real training images of that class, next
to the "real-vs-real floor" (real training vs real test images of the class, with as many test
images as synthetic ones, capped by the test set), i.e. what real data scores at these sample sizes,
and to an untrained generator's score at the same sizes (the other end of the scale).

``filter_with`` keeps only samples a trained classifier assigns to their intended class with at least
``min_confidence`` (a common "quality filter" for GAN augmentation), drawing more until each class
has its count. Drawing stops at ``max_draw_factor`` times the count: the class then keeps the images
accepted so far and a warning says so (a short class is more useful than no set at all); the
manifest records acceptance rates and which classes hit the cap.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from augment.gan.config import SynthConfig
from augment.gan.evaluate import build_named_extractor, class_features, features, fid_kid_dict
from augment.gan.models import build_generator
from augment.sampling import LoadedGan, class_generator, class_images, load_gan
from classify.training.run import now, versions
from core.data import ImageTensors, load_samples, save_png, scan_dataset
from core.device import configure_cpu_threads, resolve_device
from core.errors import UserError
from core.io import is_inside, sha256_file, write_json
from core.progress import make_progress

MANIFEST_FORMAT = "shoegan-synthetic/1"


@dataclass
class ClassBatch:
    images: torch.Tensor  # uint8, the accepted images
    drawn: int
    cap_hit: bool


def synthesize(
    cfg: SynthConfig, *, progress: bool = True, extractor: Any | None = None
) -> dict[str, Any]:
    """Write the synthetic set (see the module docstring) and return its manifest."""
    if cfg.per_class < 1:
        raise UserError(f"--per-class {cfg.per_class}: must be at least 1")
    if cfg.batch_size < 1:
        raise UserError(f"--batch-size {cfg.batch_size}: must be at least 1")
    if not 0.0 <= cfg.min_confidence <= 1.0:
        raise UserError(f"--min-confidence {cfg.min_confidence}: must be in [0, 1]")
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        configure_cpu_threads()
    gan = load_gan(cfg.gan, cfg.checkpoint, cfg.runs_dir, device)
    out = cfg.out_dir()
    data_root = Path(gan.config.data)
    _check_output(out, data_root, gan.run_dir, cfg.overwrite)
    classifier = _load_filter(cfg, gan, device) if cfg.filter_with else None

    sets: dict[str, ClassBatch] = {}
    with _Bar(progress, cfg.per_class * len(gan.class_names)) as bar:
        for c, name in enumerate(gan.class_names):
            bar.describe(name)
            sets[name] = _draw_class(gan, c, cfg, classifier, device, bar.advance)
    empty = [name for name, batch in sets.items() if len(batch.images) == 0]
    if empty:
        raise UserError(
            f"--filter-with {cfg.filter_with}: no sample of {', '.join(empty)} reached "
            f"--min-confidence {cfg.min_confidence} in {cfg.max_draw_factor}x{cfg.per_class} draws; "
            "lower the threshold or train the GAN longer (nothing was written)"
        )
    for name, batch in sets.items():
        if batch.cap_hit:
            warnings.warn(
                f"class {name!r}: only {len(batch.images)} of {cfg.per_class} samples reached "
                f"--min-confidence {cfg.min_confidence} after {batch.drawn} draws "
                f"({cfg.max_draw_factor}x the count); lower the threshold or train the GAN longer",
                stacklevel=2,
            )

    fid = _score(gan, sets, cfg, device, extractor, progress) if cfg.fid else _no_fid()
    manifest = _manifest(cfg, gan, sets, fid, out)
    _write_set(out, sets, manifest)
    return manifest


class _Bar:
    """A Rich bar over the images written (or nothing with ``enabled=False``)."""

    def __init__(self, enabled: bool, total: int, description: str = "synthesize") -> None:
        self.progress = make_progress() if enabled else None
        self.task = None
        self.total, self.description = total, description

    def __enter__(self) -> _Bar:
        if self.progress is not None:
            self.progress.start()
            self.task = self.progress.add_task(self.description, total=self.total, info="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def describe(self, info: str) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, info=info)

    def advance(self, n: int) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.advance(self.task, n)


def _check_output(out: Path, data_root: Path, run_dir: Path, overwrite: bool) -> None:
    for folder, what in ((data_root, "the dataset"), (run_dir, "the GAN run")):
        if is_inside(out, folder):
            raise UserError(
                f"--out {out}: lies inside {what} {folder}; synthetic images are never written "
                "there; choose another --out (default synthetic/<gan>)"
            )
    if out.exists() and not overwrite:
        raise UserError(f"{out}: exists; pass --overwrite to replace it or choose another --out")


def _load_filter(cfg: SynthConfig, gan: LoadedGan, device: torch.device) -> Any:
    from classify.checkpoint import load_classifier

    classifier = load_classifier(cfg.filter_with, "best", runs_dir=cfg.runs_dir, device=device)
    if list(classifier.class_names) != list(gan.class_names):
        raise UserError(
            f"--filter-with {cfg.filter_with}: its classes {classifier.class_names} differ from the "
            f"GAN's {gan.class_names}; use a classifier trained on the same dataset"
        )
    return classifier


def _draw_class(
    gan: LoadedGan,
    c: int,
    cfg: SynthConfig,
    classifier: Any | None,
    device: torch.device,
    advance: Callable[[int], None],
) -> ClassBatch:
    noise = class_generator(cfg.seed, c)
    if classifier is None:
        images = class_images(gan.generator, c, cfg.per_class, noise,
                              batch_size=cfg.batch_size, device=device)  # fmt: skip
        advance(len(images))
        return ClassBatch(images, cfg.per_class, cap_hit=False)
    kept: list[torch.Tensor] = []
    n_kept, drawn, cap = 0, 0, cfg.max_draw_factor * cfg.per_class
    while n_kept < cfg.per_class and drawn < cap:
        count = min(cfg.batch_size, cap - drawn)
        images = class_images(gan.generator, c, count, noise,
                              batch_size=cfg.batch_size, device=device)  # fmt: skip
        drawn += count
        confidence = classifier.predict_proba(_resize(images, classifier.image_size))[:, c]
        accepted = images[confidence >= cfg.min_confidence][: cfg.per_class - n_kept]
        kept.append(accepted)
        n_kept += len(accepted)
        advance(len(accepted))
    return ClassBatch(torch.cat(kept), drawn, cap_hit=n_kept < cfg.per_class)


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 images resized (bicubic, antialiased) to the classifier's input size if needed."""
    if images.shape[-1] == size:
        return images
    x = F.interpolate(images.float(), size=(size, size), mode="bicubic", antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8)


def _real_split(gan: LoadedGan, split: str) -> ImageTensors:
    """The GAN's dataset split decoded exactly as for GAN training."""
    index = scan_dataset(Path(gan.config.data))
    if index.class_names != gan.class_names:
        raise UserError(
            f"{index.root}: classes {index.class_names} differ from the GAN's {gan.class_names}; "
            "was the dataset changed after training?"
        )
    samples = index.train if split == "train" else index.test
    return load_samples(samples, index.class_names, gan.config.image_size,
                        resize_mode=gan.config.resize_mode, workers=gan.config.workers)  # fmt: skip


def _score(
    gan: LoadedGan,
    sets: dict[str, ClassBatch],
    cfg: SynthConfig,
    device: torch.device,
    extractor: Any | None,
    progress: bool,
) -> dict[str, Any]:
    extractor = extractor or build_named_extractor(cfg.feature_extractor, device)
    n_classes, size = len(gan.class_names), gan.config.image_size
    train = _real_split(gan, "train")
    test = _floor_subset(_real_split(gan, "test"), {n: len(b.images) for n, b in sets.items()},
                         cfg.seed)  # fmt: skip
    counts = {name: len(batch.images) for name, batch in sets.items()}
    untrained = _untrained_sets(gan, counts, cfg, device) if cfg.untrained_reference else {}
    total = len(train) + len(test) + sum(counts.values()) + sum(len(u) for u in untrained.values())
    with _Bar(progress, total, "FID/KID features") as bar:
        bar.describe("real train")
        real_train = class_features(train.images, train.labels, n_classes, extractor,
                                    progress=bar.advance)  # fmt: skip
        bar.describe("real test (floor)")
        real_test = class_features(test.images, test.labels, n_classes, extractor,
                                   progress=bar.advance)  # fmt: skip
        bar.describe("synthetic")
        synthetic = {name: features(batch.images, extractor, progress=bar.advance)
                     for name, batch in sets.items()}  # fmt: skip
        bar.describe("untrained generator")
        chance = {name: features(images, extractor, progress=bar.advance)
                  for name, images in untrained.items()}  # fmt: skip
    per_class, floor = {}, {}
    for c, name in enumerate(gan.class_names):
        if len(synthetic[name]) >= 2:
            per_class[name] = fid_kid_dict(synthetic[name], real_train[c])
        floor[name] = fid_kid_dict(real_test[c], real_train[c])
    all_synthetic = np.concatenate([synthetic[n] for n in gan.class_names])
    reference: dict[str, Any] = {}
    if chance:
        reference = {
            "untrained_generator": {
                name: fid_kid_dict(chance[name], real_train[c])
                for c, name in enumerate(gan.class_names)
                if len(chance[name]) >= 2
            },
            "untrained_generator_overall": fid_kid_dict(
                np.concatenate(list(chance.values())), np.concatenate(real_train)
            ),
        }
    return {
        "extractor": extractor.name,
        "reference": f"real training images of the class, at {size} px",
        "per_class": per_class,
        "overall": fid_kid_dict(all_synthetic, np.concatenate(real_train)),
        "real_vs_real": floor,
        "real_vs_real_overall": fid_kid_dict(np.concatenate(real_test), np.concatenate(real_train)),
        **reference,
        "note": "FID is biased upwards at small sample sizes: read a class's FID between its "
        "real_vs_real floor (real test vs real train at the same sample size) and the untrained "
        "generator's score (same architecture at initialisation, same sample size); KID is "
        "unbiased.",
    }


def _untrained_sets(
    gan: LoadedGan, counts: dict[str, int], cfg: SynthConfig, device: torch.device
) -> dict[str, torch.Tensor]:
    """Per class, as many images as the synthetic set has, from a generator of the same
    architecture at its initialisation (seeded by ``cfg.seed``): the FID an untrained GAN gets,
    the other end of the scale from the real-vs-real floor."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        generator = build_generator(gan.config, len(gan.class_names))
    generator.to(device).eval().requires_grad_(False)
    return {
        name: class_images(
            generator,
            c,
            counts[name],
            class_generator(cfg.seed, c),
            batch_size=cfg.batch_size,
            device=device,
        )  # fmt: skip
        for c, name in enumerate(gan.class_names)
        if counts[name] > 0
    }


def _floor_subset(test: ImageTensors, counts: dict[str, int], seed: int) -> ImageTensors:
    """Per class, as many test images as synthetic ones (at least 2, at most all): the floor is then
    measured at the synthetic set's sample sizes (FID's bias depends on them)."""
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for c, name in enumerate(test.class_names):
        members = torch.nonzero(test.labels == c).flatten()
        n = max(2, min(len(members), counts[name]))
        chosen.append(members[torch.randperm(len(members), generator=generator)[:n]].sort().values)
    return test.subset(torch.cat(chosen))


def _no_fid() -> dict[str, Any]:
    return {"computed": False, "per_class": {}, "overall": None, "real_vs_real": {}}


def _manifest(
    cfg: SynthConfig,
    gan: LoadedGan,
    sets: dict[str, ClassBatch],
    fid: dict[str, Any],
    out: Path,
) -> dict[str, Any]:
    counts = {name: len(batch.images) for name, batch in sets.items()}
    filt = None
    if cfg.filter_with:
        filt = {
            "classifier_run": cfg.filter_with,
            "min_confidence": cfg.min_confidence,
            "max_draw_factor": cfg.max_draw_factor,
            "drawn": {name: b.drawn for name, b in sets.items()},
            "acceptance_rate": {name: counts[name] / b.drawn for name, b in sets.items()},
            "cap_hit": [name for name, b in sets.items() if b.cap_hit],
        }
    return {
        "format": MANIFEST_FORMAT,
        "gan_run": gan.run_dir.name,
        "gan_run_dir": str(gan.run_dir),
        "checkpoint": str(gan.checkpoint_path),
        "checkpoint_sha256": sha256_file(gan.checkpoint_path),
        "gan_iteration": gan.iteration,
        "per_class_models": gan.config.per_class_models,
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "class_names": list(gan.class_names),
        "requested_per_class": cfg.per_class,
        "counts": counts,
        "image_size": gan.config.image_size,
        "dataset": gan.config.data,
        "out": str(out),
        "filter": filt,
        "fid": fid,
        "options": asdict(cfg),
        "versions": versions(),
        "created": now(),
    }


def _write_set(out: Path, sets: dict[str, ClassBatch], manifest: dict[str, Any]) -> None:
    """Write into a temporary sibling, then swap it into place (replacing an old set last)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for name, batch in sets.items():
            folder = tmp / name
            folder.mkdir(parents=True)
            for i, image in enumerate(batch.images):
                save_png(image, folder / f"{i:06d}.png")
        write_json(tmp / "manifest.json", manifest)
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
