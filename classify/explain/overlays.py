"""Pictures of class activation maps: an image and its map upscaled for display, blended, and
captioned as the tiles of a grid (:func:`classify.evaluation.figures.cam_grid` draws the grid)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from classify.evaluation.figures import CamTile

DISPLAY_PX = 128  # tiles are upscaled (by an integer factor) to at least this many pixels


def display_scale(size: int, display_px: int = DISPLAY_PX) -> int:
    """Integer upscale factor so a ``size``-pixel tile shows at >= ``display_px`` pixels."""
    return max(1, math.ceil(display_px / size))


def overlay(
    image_uint8: torch.Tensor, cam: np.ndarray, display_px: int = DISPLAY_PX
) -> tuple[np.ndarray, np.ndarray]:
    """(upscaled image, upscaled CAM overlay) as H x W x 3 uint8. The image is enlarged by pixel
    repetition (its real pixels), the map bilinearly (it is a smooth field anyway)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    scale = display_scale(image_uint8.shape[-1], display_px)
    img = image_uint8.permute(1, 2, 0).cpu().numpy()
    big = np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)
    cam_big = F.interpolate(
        torch.from_numpy(np.ascontiguousarray(cam))[None, None].float(),
        size=big.shape[:2],
        mode="bilinear",
        align_corners=False,
    )[0, 0]
    cam_big = cam_big.clamp(0, 1).numpy()
    # show_cam_on_image refuses images with a maximum above 1: pass floats in [0, 1].
    blended = show_cam_on_image(
        big.astype(np.float32) / 255.0, cam_big, use_rgb=True, image_weight=0.5
    )
    return big, blended


def cam_tiles(
    class_names: Sequence[str],
    images_uint8: torch.Tensor,
    cams: np.ndarray,
    probabilities: torch.Tensor,
    labels: Sequence[int] | None,
    rows: Sequence[Sequence[int]],
    names: Sequence[str] | None,
) -> list[list[CamTile]]:
    """Grid rows of (image, overlay) tiles captioned with the true and the predicted class."""
    predicted = probabilities.argmax(dim=1).tolist()
    tiles = []
    for row in rows:
        tile_row = []
        for i in row:
            big, blended = overlay(images_uint8[i], cams[i])
            tile_row.append(
                CamTile(
                    image=big,
                    overlay=blended,
                    true=class_names[labels[i]] if labels is not None else None,
                    predicted=class_names[predicted[i]],
                    confidence=float(probabilities[i, predicted[i]]),
                    name=names[i] if names is not None else "",
                )
            )
        tiles.append(tile_row)
    return tiles
