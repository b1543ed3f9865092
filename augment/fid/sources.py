"""What can be scored: a folder of images (any depth), a list of image files, or a uint8 tensor.

Files are decoded as RGB uint8 at their native size: the extractor resizes to its own input size
(InceptionV3: 299 px with torch-fidelity's TensorFlow-compatible bilinear), exactly as torch-fidelity
does for a folder. A folder may mix image sizes: images of one size are batched together and each
image is resized by the extractor alone, so its features do not depend on its neighbours' sizes
(no second resampling to a common size, which torch-fidelity itself cannot batch at all).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from core.data import IMAGE_EXTENSIONS, is_image_file
from core.errors import UserError

FeatureSource = Union[str, Path, Sequence[Union[str, Path]], torch.Tensor]  # noqa: UP007


def list_images(folder: Path) -> list[Path]:
    """Image files below ``folder`` at any depth, sorted; a missing or image-less folder is a
    :class:`UserError` naming it."""
    folder = Path(folder)
    if folder.is_file():
        raise UserError(f"{folder}: is a file; pass a folder of images or a list of image files")
    if not folder.is_dir():
        raise UserError(f"{folder}: image folder not found; pass an existing folder of images")
    images = sorted(p for p in folder.rglob("*") if is_image_file(p))
    if not images:
        raise UserError(
            f"{folder}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) at any depth; "
            "point at a folder that holds images"
        )
    return images


def source_paths(source: FeatureSource) -> list[Path] | None:
    """The files of a folder or list source; ``None`` for an in-memory tensor."""
    if isinstance(source, torch.Tensor):
        return None
    if isinstance(source, (str, Path)):
        return list_images(Path(source))
    paths = [Path(p) for p in source]
    for path in paths:
        if not path.is_file():
            raise UserError(f"{path}: image file not found; remove it from the list")
    return paths


def source_size(source: FeatureSource) -> int:
    if isinstance(source, torch.Tensor):
        return int(source.shape[0])
    paths = source_paths(source)
    return len(paths) if paths is not None else 0


def check_image_tensor(images: torch.Tensor) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise UserError(
            f"image tensor of {images.dtype} {tuple(images.shape)}: expected uint8 N x 3 x H x W "
            "(convert float [-1, 1] images with core.data.to_uint8)"
        )


def decode_rgb(path: Path) -> torch.Tensor:
    """One image file as RGB uint8 3 x H x W at its native size."""
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise UserError(f"{path}: unreadable image ({reason}); replace or remove it") from exc
    return torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1)
