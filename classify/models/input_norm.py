"""Input normalisation as the model's first step, so every caller keeps feeding [-1, 1] images.

The toolkit's classifiers take float images in [-1, 1] (:func:`core.data.to_model_input`, also
the GAN's tanh range). Weights trained elsewhere expect their own input statistics: torchvision's
ImageNet weights take ``(x01 - mean) / std`` with ImageNet's per-channel mean and standard deviation
on images scaled to [0, 1] (``weights.transforms()``, torchvision's ``ImageClassification``). A
model built with ``input_norm="imagenet"`` converts ``x01 = (x + 1) / 2`` and normalises inside its
forward pass, so training, evaluation, prediction, Grad-CAM and the GAN's filter classifier need no
change, and a checkpoint (whose ``model_config`` names the normalisation) rebuilds the same model.
The statistics are non-persistent buffers: the state dict keeps torchvision's keys exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

# torchvision.transforms._presets.ImageClassification's defaults: the statistics every torchvision
# ImageNet classification weight was trained with (tests check them against weights.transforms()).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Keys: classify.names.INPUT_NORMS. None: the model takes [-1, 1] as it is.
INPUT_NORM_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = {
    "none": None,
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
}


class InputNorm(nn.Module):
    """``((x + 1) / 2 - mean) / std`` per channel: [-1, 1] images to a normalisation's inputs."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        # The same operations as torchvision's F.normalize after to [0, 1], so logits match its.
        return ((x + 1.0) * 0.5 - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


def make_input_norm(name: str) -> nn.Module:
    """The first module of a model for normalisation ``name`` (an INPUT_NORM_STATS key)."""
    if name not in INPUT_NORM_STATS:
        raise ValueError(f"input norm {name!r}: choose one of {', '.join(INPUT_NORM_STATS)}")
    stats = INPUT_NORM_STATS[name]
    return nn.Identity() if stats is None else InputNorm(*stats)
