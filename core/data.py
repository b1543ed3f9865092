"""Folder-per-class image datasets, validated up front and decoded once into memory.

Layout: ``ROOT/train/<class>/*`` and ``ROOT/test/<class>/*``. A validation split is carved out of
``train`` (stratified, seeded); ``test`` is read only by evaluation. Small datasets are decoded once and
held as uint8 tensors (N x 3 x S x S), so epochs are not dominated by image decoding. Nothing is ever
written into the dataset folder.

Pixel convention shared by the classifiers and the GAN: model inputs are float in [-1, 1]
(``to_model_input``), which is also the range of the generator's tanh output.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from core.errors import UserError
from core.io import writing
from core.names import RESIZE_MODES

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int


@dataclass(frozen=True)
class DatasetIndex:
    """The validated file lists of a dataset; no pixels yet."""

    root: Path
    class_names: list[str]
    train: list[Sample]
    test: list[Sample]


@dataclass
class ImageTensors:
    """Decoded images of one split, held in memory."""

    images: torch.Tensor  # uint8, N x 3 x S x S
    labels: torch.Tensor  # int64, N
    paths: list[str]
    class_names: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def __len__(self) -> int:
        return int(self.labels.numel())

    def subset(self, index: torch.Tensor | Sequence[int]) -> ImageTensors:
        index = torch.as_tensor(index, dtype=torch.long)
        return ImageTensors(
            self.images[index],
            self.labels[index],
            [self.paths[i] for i in index.tolist()],
            self.class_names,
        )

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=len(self.class_names)).tolist()


def is_image_file(path: Path) -> bool:
    return (
        path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")
    )


def scan_class_folders(folder: Path, what: str = "folder") -> dict[str, list[Path]]:
    """Map each class sub-folder of ``folder`` to its sorted image files.

    Raises :class:`UserError` for a missing folder, no class folders, or a class folder with no images.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(
            f"{folder}: {what} not found; expected a folder with one sub-folder per class"
        )
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = sorted(p for p in folder.iterdir() if is_image_file(p))
    if not classes:
        hint = " (images lie directly in it: move them into <class>/ sub-folders)" if loose else ""
        raise UserError(f"{folder}: no class sub-folders{hint}; expected {folder}/<class>/<image>")
    if loose:
        warnings.warn(
            f"{folder}: {len(loose)} image(s) lie outside the class folders and are ignored (e.g. "
            f"{loose[0].name}); move them into <class>/ sub-folders to use them",
            stacklevel=2,
        )
    files: dict[str, list[Path]] = {}
    for class_dir in classes:
        images = sorted(p for p in class_dir.rglob("*") if is_image_file(p))
        if not images:
            raise UserError(
                f"{class_dir}: class folder has no images ({', '.join(sorted(IMAGE_EXTENSIONS))}); "
                "add images or remove the folder"
            )
        files[class_dir.name] = images
    return files


def scan_dataset(root: Path) -> DatasetIndex:
    """Validate a ``train/`` + ``test/`` dataset and list its files."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(
            f"{root}: dataset folder not found; pass --data DIR (see `cli data footwear`)"
        )
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise UserError(
                f"{root / split}: missing; a dataset needs {root}/train/<class>/ and {root}/test/<class>/"
            )
    train = scan_class_folders(root / "train", "training folder")
    test = scan_class_folders(root / "test", "test folder")
    if sorted(train) != sorted(test):
        only_train = sorted(set(train) - set(test))
        only_test = sorted(set(test) - set(train))
        raise UserError(
            f"{root}: train and test class folders differ (only in train: {only_train or '-'}; "
            f"only in test: {only_test or '-'}); make the class sub-folders match"
        )
    class_names = sorted(train)
    return DatasetIndex(
        root=root,
        class_names=class_names,
        train=_samples(train, class_names),
        test=_samples(test, class_names),
    )


def _samples(files: dict[str, list[Path]], class_names: list[str]) -> list[Sample]:
    return [Sample(path, class_names.index(name)) for name in class_names for path in files[name]]


def decode_image(path: Path, image_size: int, resize_mode: str = "crop") -> torch.Tensor:
    """Read any image as RGB uint8 3 x S x S.

    ``crop``: shorter side to S, centre crop; ``squash``: resize to S x S ignoring aspect;
    ``pad``: longer side to S, pad with the border colour of the corners (black when unsure).
    """
    if path.stat().st_size == 0:
        raise ValueError("zero-byte file")
    with Image.open(path) as img:
        img.load()
        rgb = img.convert("RGB")
    if resize_mode == "squash":
        rgb = rgb.resize((image_size, image_size), Image.BICUBIC)
    elif resize_mode == "crop":
        w, h = rgb.size
        scale = image_size / min(w, h)
        nw, nh = max(image_size, round(w * scale)), max(image_size, round(h * scale))
        rgb = rgb.resize((nw, nh), Image.BICUBIC)
        left, top = (nw - image_size) // 2, (nh - image_size) // 2
        rgb = rgb.crop((left, top, left + image_size, top + image_size))
    elif resize_mode == "pad":
        w, h = rgb.size
        scale = image_size / max(w, h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        small = rgb.resize((nw, nh), Image.BICUBIC)
        rgb = Image.new("RGB", (image_size, image_size), small.getpixel((0, 0)))
        rgb.paste(small, ((image_size - nw) // 2, (image_size - nh) // 2))
    else:
        raise UserError(f"--resize {resize_mode!r}: choose one of {', '.join(RESIZE_MODES)}")
    array = np.asarray(rgb, dtype=np.uint8).copy()
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


DecodeResult = torch.Tensor | str  # the decoded image, or why it could not be read


def _decode_or_reason(sample: Sample, image_size: int, resize_mode: str) -> DecodeResult:
    """The decoded image, or the first line of why the file could not be read."""
    try:
        return decode_image(sample.path, image_size, resize_mode)
    except UserError:
        raise
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        return str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__


def _decode_all(
    samples: Sequence[Sample],
    image_size: int,
    resize_mode: str,
    workers: int,
    progress: Callable[[int], None] | None,
) -> list[DecodeResult]:
    """Decode every sample in order, on ``workers`` threads (0: in this thread)."""
    decode = functools.partial(_decode_or_reason, image_size=image_size, resize_mode=resize_mode)
    results: list[DecodeResult] = []
    with ThreadPoolExecutor(max_workers=workers) if workers > 0 else nullcontext() as pool:
        for result in pool.map(decode, samples) if pool else map(decode, samples):
            results.append(result)
            if progress:
                progress(1)
    return results


def _check_readable(
    samples: Sequence[Sample],
    class_names: list[str],
    labels: torch.Tensor,
    skipped: list[tuple[str, str]],
    strict: bool,
) -> None:
    """Refuse (one-line :class:`UserError`) a strict load with unreadable files, a load with no
    readable image, or a class left without any."""
    if skipped and strict:
        path, reason = skipped[0]
        more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
        raise UserError(
            f"{path}: unreadable image ({reason}){more}; replace or remove it, or drop --strict"
        )
    if not labels.numel():
        where = os.path.commonpath([str(s.path.parent) for s in samples]) if samples else "dataset"
        example = f" (e.g. {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise UserError(
            f"{where}: no readable images among {len(samples)} files{example}; check the dataset folder"
        )
    counts = torch.bincount(labels, minlength=len(class_names))
    for label, (name, count) in enumerate(zip(class_names, counts.tolist(), strict=True)):
        if count == 0:
            folder = next((s.path.parent for s in samples if s.label == label), name)
            raise UserError(
                f"{folder}: class {name!r} has no readable images left; add readable images for it"
            )


def load_samples(
    samples: Sequence[Sample],
    class_names: list[str],
    image_size: int,
    *,
    resize_mode: str = "crop",
    workers: int = 0,
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImageTensors:
    """Decode ``samples`` into memory. Unreadable files are skipped (listed in ``skipped``) or, with
    ``strict``, raise a one-line :class:`UserError` naming the first of them."""
    results = _decode_all(samples, image_size, resize_mode, workers, progress)
    images, labels, paths, skipped = [], [], [], []
    for sample, result in zip(samples, results, strict=True):
        if isinstance(result, str):
            skipped.append((str(sample.path), result))
            continue
        images.append(result)
        labels.append(sample.label)
        paths.append(str(sample.path))
    label_tensor = torch.tensor(labels, dtype=torch.long)
    _check_readable(samples, class_names, label_tensor, skipped, strict)
    return ImageTensors(torch.stack(images), label_tensor, paths, list(class_names), skipped)


def warn_skipped(tensors: ImageTensors) -> None:
    if tensors.skipped:
        listing = "; ".join(f"{p} ({r})" for p, r in tensors.skipped[:10])
        more = f"; and {len(tensors.skipped) - 10} more" if len(tensors.skipped) > 10 else ""
        warnings.warn(
            f"skipped {len(tensors.skipped)} unreadable image(s): {listing}{more}", stacklevel=2
        )


def stratified_split(
    labels: torch.Tensor, val_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded stratified split of indices into (train, val); each class keeps at least one training
    image, and gets at least one validation image when it has two or more and ``val_fraction > 0``."""
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"--val-fraction {val_fraction}: must be in [0, 1)")
    generator = torch.Generator().manual_seed(seed)
    train_idx, val_idx = [], []
    for label in torch.unique(labels).tolist():
        members = torch.nonzero(labels == label).flatten()
        members = members[torch.randperm(members.numel(), generator=generator)]
        n_val = round(members.numel() * val_fraction)
        if val_fraction > 0 and members.numel() >= 2:
            n_val = min(max(n_val, 1), members.numel() - 1)
        val_idx.append(members[:n_val])
        train_idx.append(members[n_val:])
    return torch.sort(torch.cat(train_idx)).values, torch.sort(torch.cat(val_idx)).values


def to_model_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1] (the range of the classifiers' inputs and the GAN's outputs)."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounding to nearest."""
    return images.detach().add(1.0).mul(127.5).round_().clamp_(0, 255).to(torch.uint8)


def save_png(image: torch.Tensor, path: Path) -> None:
    """Write a uint8 3 x H x W tensor as a PNG (deterministic bytes: no timestamps in PNG); a
    failed write (a full disk) is a one-line UserError naming the file (:func:`core.io.writing`)."""
    array = image.permute(1, 2, 0).cpu().numpy()
    with writing(path):
        Image.fromarray(array, mode="RGB").save(path, format="PNG", optimize=False)
