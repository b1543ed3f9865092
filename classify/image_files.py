"""Image files given by path (``cli predict``, ``cli gradcam IMAGES``): decoded to uint8 N x 3 x S x S
as a run was trained (:func:`load_image_files`: image size and resize mode), or as torchvision's
ImageNet weights prepare a photo (:func:`load_photos`); a missing or unreadable file is a one-line
error naming it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torchvision.transforms.functional as TF
from PIL import Image, UnidentifiedImageError

from core.data import decode_image
from core.errors import UserError


def read_image_files(
    paths: Sequence[str | Path], decode: Callable[[Path], torch.Tensor]
) -> torch.Tensor:
    """``decode`` (a file -> uint8 3 x S x S) applied to every file, stacked; UserError naming the
    first missing or unreadable one."""
    images = []
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            raise UserError(f"{path}: image not found; check the path")
        try:
            images.append(decode(path))
        except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            raise UserError(f"{path}: unreadable image ({reason}); pass a PNG/JPEG file") from exc
    if not images:
        raise UserError("no images given; pass one or more image files")
    return torch.stack(images)


def load_image_files(
    paths: Sequence[str | Path], image_size: int, resize_mode: str
) -> torch.Tensor:
    """uint8 N x 3 x S x S from image files, decoded as a run's images are."""
    return read_image_files(paths, lambda path: decode_image(path, image_size, resize_mode))


def photo_tensor(path: Path, transforms: Any) -> torch.Tensor:
    """One photo as ``transforms`` (a torchvision ``ImageClassification``, ``weights.transforms()``)
    prepares a PIL image before scaling it: RGB, shorter side resized to ``resize_size`` with its
    interpolation and antialiasing, centre crop to ``crop_size``; uint8 3 x crop x crop."""
    if path.stat().st_size == 0:
        raise ValueError("zero-byte file")
    with Image.open(path) as img:
        img.load()
        rgb = img.convert("RGB")
    resized = TF.resize(
        rgb,
        list(transforms.resize_size),
        interpolation=transforms.interpolation,
        antialias=transforms.antialias,
    )
    return TF.pil_to_tensor(TF.center_crop(resized, list(transforms.crop_size))).contiguous()


def load_photos(paths: Sequence[str | Path], transforms: Any) -> torch.Tensor:
    """uint8 N x 3 x crop x crop from photo files, prepared as :func:`photo_tensor` says."""
    return read_image_files(paths, lambda path: photo_tensor(path, transforms))
