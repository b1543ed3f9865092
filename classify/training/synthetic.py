"""Synthetic training images: a ``synthetic/NAME/<class>/*.png`` set written by ``cli synthesize``,
merged into the real training split (validation and test stay real only)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.data import ImageTensors, Sample, load_samples, scan_class_folders
from core.errors import UserError
from core.io import read_json

MANIFEST = "manifest.json"
ANNOTATION_KEYS = ("cas",)  # added after synthesis; not part of what the images are


def manifest_digest(path: Path) -> str:
    """sha256 of a manifest's content, leaving out later annotations (the CAS result), so a run
    that trained on the set still matches it after ``cli cas`` has scored the set."""
    manifest = {k: v for k, v in read_json(path).items() if k not in ANNOTATION_KEYS}
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SyntheticSet:
    root: Path
    class_names: list[str]
    files: dict[str, list[Path]]
    manifest: dict[str, Any]
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
    manifest = read_json(manifest_path) if manifest_path.is_file() else {}
    digest = manifest_digest(manifest_path) if manifest_path.is_file() else None
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


def load_synthetic(
    root: str | Path,
    real: ImageTensors,
    *,
    ratio: float | None,
    seed: int,
    image_size: int,
    resize_mode: str = "crop",
    workers: int = 0,
) -> tuple[ImageTensors, dict[str, Any]]:
    """Decode the chosen synthetic images and describe them for config.json."""
    synthetic = open_synthetic_set(root, real.class_names)
    real_counts = dict(zip(real.class_names, real.class_counts(), strict=True))
    samples = select_synthetic(synthetic, real_counts, ratio, seed)
    if not samples:
        raise UserError(f"{synthetic.root}: no synthetic images selected (--synthetic-ratio 0?)")
    tensors = load_samples(
        samples, real.class_names, image_size, resize_mode=resize_mode, workers=workers, strict=True
    )
    fid = synthetic.manifest.get("fid", {})
    info = {
        "path": str(synthetic.root),
        "manifest_sha256": synthetic.manifest_sha256,
        "gan_run": synthetic.manifest.get("gan_run"),
        "ratio": ratio,
        "counts": dict(zip(real.class_names, tensors.class_counts(), strict=True)),
        "fid": fid.get("overall"),
        "fid_per_class": fid.get("per_class"),
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
