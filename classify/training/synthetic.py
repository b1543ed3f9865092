"""Synthetic training images: a ``synthetic/NAME/<class>/*.png`` set written by ``cli synthesize``
(described by its :class:`core.manifest.Manifest`), merged into the real training split (validation
and test stay real only)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from classify.training.config import TrainConfig
from core.data import ImageTensors, Sample, load_samples, scan_class_folders
from core.errors import UserError
from core.manifest import MANIFEST, Manifest, score_to_json, scores_to_json
from core.split import describe_split, seen_validation


@dataclass(frozen=True)
class SyntheticSet:
    """A synthetic image folder checked against the real dataset's classes."""

    root: Path
    class_names: list[str]
    files: dict[str, list[Path]]
    manifest: Manifest | None  # None: the folder has no manifest.json
    manifest_sha256: str | None


def open_synthetic_set(root: str | Path, real_class_names: list[str]) -> SyntheticSet:
    """Validate a synthetic folder against the real dataset's classes."""
    root = Path(root)
    files = scan_class_folders(root, "synthetic image folder")
    if sorted(files) != sorted(real_class_names):
        raise UserError(
            f"{root}: synthetic classes {sorted(files)} differ from the dataset's "
            f"{sorted(real_class_names)}; synthesize from a GAN trained on this dataset"
        )
    manifest_path = root / MANIFEST
    manifest = Manifest.read(manifest_path) if manifest_path.is_file() else None
    digest = manifest.digest() if manifest is not None else None
    return SyntheticSet(root, sorted(files), files, manifest, digest)


def select_synthetic(
    synthetic: SyntheticSet,
    real_counts: dict[str, int],
    ratio: float | None,
    seed: int,
) -> list[Sample]:
    """All synthetic images, or ``ratio`` per real training image of each class (seeded choice)."""
    if ratio is not None and ratio < 0:
        raise UserError(f"--synthetic-ratio {ratio}: must be >= 0")
    generator = torch.Generator().manual_seed(seed)
    chosen: list[Sample] = []
    for label, name in enumerate(synthetic.class_names):
        paths = synthetic.files[name]
        if ratio is not None:
            want = round(ratio * real_counts[name])
            if want > len(paths):
                raise UserError(
                    f"{synthetic.root / name}: {len(paths)} images, but --synthetic-ratio {ratio} "
                    f"asks for {want}; synthesize more (--per-class) or lower the ratio"
                )
            order = torch.randperm(len(paths), generator=generator)[:want].sort().values
            paths = [paths[i] for i in order.tolist()]
        chosen.extend(Sample(p, label) for p in paths)
    return chosen


def check_split(synthetic: SyntheticSet, val: ImageTensors, cfg: TrainConfig) -> dict[str, Any]:
    """Refuse a set whose generator (or filter) trained on any of this run's validation images,
    compared by content (:func:`core.split.seen_validation`); warn loudly when it trained on every
    ``train/`` image on purpose (``--use-all-train``) or recorded nothing. Returns what
    config.json's "synthetic" says about it."""
    record = synthetic.manifest.split if synthetic.manifest is not None else None
    ours = describe_split(cfg.split_seed, cfg.val_fraction)
    if record is None:
        warnings.warn(
            f"{synthetic.root}: its manifest records no split, so whether its generator saw this "
            f"run's validation images cannot be checked; synthesize it again from a GAN trained "
            f"with this version",
            stacklevel=2,
        )
        return {"recorded": False, "validation_seen": None}
    seen = seen_validation(record, val)
    summary = {**record.summary(), "recorded": True, "validation_seen": len(seen)}
    if not record.held_out:
        warnings.warn(
            f"{synthetic.root}: its generator trained on every train/ image (--use-all-train), "
            f"{len(seen)} of this run's {len(val)} validation images included: validation "
            f"accuracy now flatters the synthetic images and cannot choose fairly; train the GAN "
            f"without --use-all-train for evidence you can trust",
            stacklevel=2,
        )
    elif seen:
        raise UserError(
            f"--synthetic {synthetic.root}: its generator or filter trained on {len(seen)} of this "
            f"run's {len(val)} validation images (e.g. {seen[0]}); the set's split: "
            f"{record.describe()}, this run's: {ours}; train the GAN with the same --split-seed "
            f"and --val-fraction"
        )
    return summary


def load_synthetic(
    cfg: TrainConfig, real: ImageTensors, val: ImageTensors
) -> tuple[ImageTensors, dict[str, Any]]:
    """Decode the synthetic images ``cfg`` asks for (``cfg.synthetic``, ``cfg.synthetic_ratio``,
    chosen with ``cfg.seed``, decoded as the real ones) and describe them for config.json; a set
    whose makers saw ``val`` is refused (:func:`check_split`)."""
    ratio = cfg.synthetic_ratio
    synthetic = open_synthetic_set(cfg.synthetic, real.class_names)
    split = check_split(synthetic, val, cfg)
    real_counts = dict(zip(real.class_names, real.class_counts(), strict=True))
    samples = select_synthetic(synthetic, real_counts, ratio, cfg.seed)
    if not samples:
        raise UserError(f"{synthetic.root}: no synthetic images selected (--synthetic-ratio 0?)")
    tensors = load_samples(
        samples,
        real.class_names,
        cfg.image_size,
        resize_mode=cfg.resize_mode,
        workers=cfg.workers,
        strict=True,
    )
    manifest = synthetic.manifest
    fid = manifest.fid if manifest is not None else None
    info = {
        "path": str(synthetic.root),
        "manifest_sha256": synthetic.manifest_sha256,
        "gan_run": manifest.gan_run if manifest is not None else None,
        "ratio": ratio,
        "counts": dict(zip(real.class_names, tensors.class_counts(), strict=True)),
        "fid": score_to_json(fid.overall) if fid is not None else None,
        "fid_per_class": scores_to_json(fid.per_class) if fid is not None else None,
        "split": split,
    }
    return tensors, info


def concat(a: ImageTensors, b: ImageTensors) -> ImageTensors:
    """Real training images followed by synthetic ones (same classes, same image size)."""
    if a.class_names != b.class_names:
        raise UserError(f"class names differ: {a.class_names} vs {b.class_names}")
    return ImageTensors(
        torch.cat([a.images, b.images]),
        torch.cat([a.labels, b.labels]),
        a.paths + b.paths,
        a.class_names,
        a.skipped + b.skipped,
    )
