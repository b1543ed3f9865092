"""Write a synthetic training set from a trained GAN: ``synthetic/NAME/<class>/NNNNNN.png`` plus a
self-describing ``manifest.json`` (:class:`core.manifest.Manifest`).

Deterministic: class ``c``'s noise comes from a generator seeded by ``(seed, c)`` and the EMA
generator runs in eval mode, so the same seed (and batch size) gives byte-identical PNGs. Everything
is written to a hidden temporary sibling folder that is renamed into place at the end, so an
interrupted run leaves no half-written set. The manifest scores the set the way a user should read
it (:mod:`augment.synthesis_scores`): per-class FID/KID and precision/recall/density/coverage
against the real training images of the class, next to the real-vs-real floor and an untrained
generator's score at the same sample sizes (``score_per_class``: the first N images of each class
only, so sets of different sizes score at one size). ``truncation`` draws the noise with the
truncation trick (Brock et al. 2019, :func:`augment.sampling.draw_noise`) and is recorded in the
manifest, as are the standing statistics the EMA generator was sampled with.

``filter_with`` keeps only samples a trained classifier assigns to their intended class with at least
``min_confidence`` (a common "quality filter" for GAN augmentation), drawing more until each class
has its count. Drawing stops at ``max_draw_factor`` times the count: the class then keeps the images
accepted so far and a warning says so (a short class is more useful than no set at all); the
manifest records acceptance rates and which classes hit the cap. With ``oversample`` K the filter
ranks instead of thresholding: each class draws K x its count and keeps the count most confidently
correct samples (over-generation then selection, as in the GAN-augmentation literature's "filtered"
sets); the manifest records K and the lowest kept probability per class.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from augment.gan.config import SynthConfig
from augment.gan.evaluate import build_named_extractor
from augment.sampling import LoadedGan, class_generator, class_images, load_gan
from augment.synthesis_scores import load_references, score_set
from core.data import save_png
from core.device import setup_device
from core.errors import UserError
from core.io import sha256_file
from core.manifest import MANIFEST, FidScores, Manifest, SampleFilter
from core.progress import make_progress
from core.rundir import is_inside, now, versions
from core.split import SplitRecord, learned_by


@dataclass
class ClassBatch:
    """One class's accepted samples and how many were drawn to get them."""

    images: torch.Tensor  # uint8, the accepted images
    drawn: int
    cap_hit: bool
    min_confidence: float | None = None  # --oversample: the lowest kept probability


def synthesize(
    cfg: SynthConfig, *, progress: bool = True, extractor: Any | None = None
) -> Manifest:
    """Write the synthetic set (see the module docstring) and return its manifest."""
    cfg.validate()
    device = setup_device(cfg.device)
    gan = load_gan(cfg.gan, cfg.checkpoint, cfg.runs_dir, device, cfg.standing_stats)
    out = cfg.out_dir()
    data_root = Path(gan.config.data)
    _check_output(out, data_root, gan.run_dir, cfg.overwrite)
    classifier = _load_filter(cfg, gan, device) if cfg.filter_with else None

    sets: dict[str, ClassBatch] = {}
    with _Bar(progress, cfg.per_class * len(gan.class_names)) as bar:
        for c, name in enumerate(gan.class_names):
            bar.describe(name)
            sets[name] = _draw_class(gan, c, cfg, classifier, device, bar.advance)
    _check_drawn(sets, cfg)

    fid = (
        _score(gan, sets, cfg, device, extractor, progress) if cfg.fid else FidScores.not_computed()
    )
    manifest = _manifest(
        cfg,
        gan,
        sets,
        fid,
        out,
        learned_by(gan.run_dir, *([classifier.run_dir] if classifier else [])),
    )
    _write_set(out, sets, manifest)
    return manifest


def _check_drawn(sets: dict[str, ClassBatch], cfg: SynthConfig) -> None:
    """Refuse a class the filter left empty; warn about classes that hit the draw cap."""
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
                stacklevel=3,
            )


def _score(
    gan: LoadedGan,
    sets: dict[str, ClassBatch],
    cfg: SynthConfig,
    device: torch.device,
    extractor: Any | None,
    progress: bool,
) -> FidScores:
    extractor = extractor or build_named_extractor(cfg.feature_extractor, device)
    limit = cfg.score_per_class or None  # 0 or None: every image
    images = {name: batch.images[:limit] for name, batch in sets.items()}  # the first N, or all
    counts = {name: len(class_images) for name, class_images in images.items()}
    refs = load_references(gan, counts, cfg, device)
    with _Bar(progress, refs.n_images() + sum(counts.values()), "FID/KID features") as bar:
        return score_set(images, refs, extractor, bar, gan.config.image_size,
                         pr_k=cfg.precision_recall_k, dc_k=cfg.density_coverage_k)  # fmt: skip


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
        images = class_images(gan.generator, c, cfg.per_class, noise, batch_size=cfg.batch_size,
                              device=device, truncation=cfg.truncation)  # fmt: skip
        advance(len(images))
        return ClassBatch(images, cfg.per_class, cap_hit=False)
    if cfg.oversample is not None:
        return _draw_ranked(gan, c, cfg, classifier, device, advance)
    kept: list[torch.Tensor] = []
    n_kept, drawn, cap = 0, 0, cfg.max_draw_factor * cfg.per_class
    while n_kept < cfg.per_class and drawn < cap:
        count = min(cfg.batch_size, cap - drawn)
        images = class_images(gan.generator, c, count, noise, batch_size=cfg.batch_size,
                              device=device, truncation=cfg.truncation)  # fmt: skip
        drawn += count
        confidence = classifier.predict_proba(_resize(images, classifier.image_size))[:, c]
        accepted = images[confidence >= cfg.min_confidence][: cfg.per_class - n_kept]
        kept.append(accepted)
        n_kept += len(accepted)
        advance(len(accepted))
    return ClassBatch(torch.cat(kept), drawn, cap_hit=n_kept < cfg.per_class)


def _draw_ranked(
    gan: LoadedGan,
    c: int,
    cfg: SynthConfig,
    classifier: Any,
    device: torch.device,
    advance: Callable[[int], None],
) -> ClassBatch:
    """``oversample`` x ``per_class`` draws of class ``c``, the ``per_class`` with the highest
    probability of class ``c`` under the filter kept (ties: the earlier draw), in draw order."""
    assert cfg.oversample is not None
    noise = class_generator(cfg.seed, c)
    drawn = cfg.oversample * cfg.per_class
    images, confidence = [], []
    for start in range(0, drawn, cfg.batch_size):
        batch = class_images(gan.generator, c, min(cfg.batch_size, drawn - start), noise,
                             batch_size=cfg.batch_size, device=device,
                             truncation=cfg.truncation)  # fmt: skip
        images.append(batch)
        confidence.append(classifier.predict_proba(_resize(batch, classifier.image_size))[:, c])
    scores = torch.cat(confidence)
    order = torch.sort(scores, descending=True, stable=True).indices[: cfg.per_class]
    keep = order.sort().values
    advance(len(keep))
    return ClassBatch(torch.cat(images)[keep], drawn, False, float(scores[keep].min()))


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 images resized (bicubic, antialiased) to the classifier's input size if needed."""
    if images.shape[-1] == size:
        return images
    x = F.interpolate(images.float(), size=(size, size), mode="bicubic", antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8)


def _manifest(
    cfg: SynthConfig,
    gan: LoadedGan,
    sets: dict[str, ClassBatch],
    fid: FidScores,
    out: Path,
    split: SplitRecord | None,
) -> Manifest:
    counts = {name: len(batch.images) for name, batch in sets.items()}
    sample_filter = None
    if cfg.filter_with:
        ranked = cfg.oversample is not None
        sample_filter = SampleFilter(
            classifier_run=cfg.filter_with,
            min_confidence=None if ranked else cfg.min_confidence,
            max_draw_factor=None if ranked else cfg.max_draw_factor,
            drawn={name: b.drawn for name, b in sets.items()},
            acceptance_rate={name: counts[name] / b.drawn for name, b in sets.items()},
            cap_hit=[name for name, b in sets.items() if b.cap_hit],
            oversample=cfg.oversample,
            min_kept_confidence={name: b.min_confidence for name, b in sets.items()}
            if ranked
            else None,
        )
    return Manifest(
        gan_run=gan.run_dir.name,
        gan_run_dir=str(gan.run_dir),
        checkpoint=str(gan.checkpoint_path),
        checkpoint_sha256=sha256_file(gan.checkpoint_path),
        gan_iteration=gan.iteration,
        per_class_models=gan.config.per_class_models,
        seed=cfg.seed,
        batch_size=cfg.batch_size,
        truncation=cfg.truncation,
        standing_stats=gan.config.standing_stats or None,
        class_names=list(gan.class_names),
        requested_per_class=cfg.per_class,
        counts=counts,
        image_size=gan.config.image_size,
        dataset=gan.config.data,
        split=split,
        out=str(out),
        filter=sample_filter,
        fid=fid,
        options=asdict(cfg),
        versions=versions(),
        created=now(),
    )


def _write_set(out: Path, sets: dict[str, ClassBatch], manifest: Manifest) -> None:
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
        manifest.write(tmp / MANIFEST)
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
