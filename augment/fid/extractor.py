"""Feature extractors: the standard FID InceptionV3 (torch-fidelity's own module) and stand-ins.

An extractor is any callable mapping uint8 B x 3 x H x W images to float B x D features, with a
``name`` (it keys the feature cache, so it must change whenever the features would) and a ``dim``.
The registry maps names to builders: real scoring uses the default ``inception-v3-compat``;
tests and smoke runs pick the tiny ``random-conv`` stand-in through a config's
``feature_extractor`` field. Its numbers are not FID, so no command offers it as an option.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from pickle import UnpicklingError
from typing import Protocol

import torch

from augment.fid.config import INCEPTION
from augment.fid.standin import RandomConvExtractor
from augment.fid.weights import InceptionWeights, prepare_inception_weights
from core.device import resolve_device
from core.errors import UserError

POOL_FEATURES = "2048"  # torch-fidelity's name for the pool3 features FID and KID use


class Extractor(Protocol):
    name: str
    dim: int

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


def fold_batchnorm(net: torch.nn.Module) -> int:
    """Fold every eval-mode BatchNorm of torch-fidelity's ``BasicConv2d`` blocks into its conv.

    Inference-only algebra (conv then affine = one conv with a bias): it removes 94 full passes
    over the activations, and changes features by ~1e-6 relative. Returns the number folded.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d

    folded = 0
    for module in net.modules():
        if isinstance(module, BasicConv2d) and isinstance(module.bn, torch.nn.BatchNorm2d):
            module.conv = fuse_conv_bn_eval(module.conv, module.bn)
            module.bn = torch.nn.Identity()
            folded += 1
    return folded


class InceptionExtractor:
    """torch-fidelity's ``FeatureExtractorInceptionV3`` (2048-d pool features), run by us.

    torch-fidelity's forward does the FID preprocessing itself (uint8 -> float, TensorFlow-1.x
    compatible bilinear resize to 299, (x - 128) / 128); we add batching on the device under
    ``inference_mode``, channels_last memory and BatchNorm folded into the convolutions (together
    ~2-3x torch-fidelity's own loop on a 2-core CPU, see bench/fid_throughput.py; features agree
    to ~1e-6 relative). No autocast, even on CUDA: FID values are compared across runs and papers,
    and half precision moves the features far more than that.
    """

    dim = 2048

    def __init__(
        self,
        weights: InceptionWeights,
        device: torch.device,
        *,
        channels_last: bool = True,
        fold_bn: bool = True,
    ) -> None:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        try:
            net = FeatureExtractorInceptionV3(
                INCEPTION,
                [POOL_FEATURES],
                feature_extractor_weights_path=str(weights.fidelity_path),
            )
        except (RuntimeError, KeyError, EOFError, OSError, ValueError, UnpicklingError) as exc:
            raise UserError(
                f"{weights.source}: not a torch-fidelity InceptionV3 state dict nor the "
                f"inception-2015-12-05 TorchScript graph ({exc.__class__.__name__})"
            ) from exc
        if fold_bn:
            fold_batchnorm(net)
        self.channels_last = channels_last
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.net = net.to(device=device, memory_format=fmt).eval()
        self.fold_bn = fold_bn
        self.device = device
        self.weights = weights
        self.name = f"{INCEPTION}-{weights.sha256[:12]}"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"expected uint8 B x 3 x H x W images, got {images.dtype} {tuple(images.shape)}"
            )
        with torch.inference_mode():
            x = images.to(self.device, non_blocking=True)
            (features,) = self.net(x)
        return features.float().cpu()


ExtractorBuilder = Callable[[str | Path | None, torch.device], Extractor]


def _build_inception(weights: str | Path | None, device: torch.device) -> Extractor:
    return InceptionExtractor(prepare_inception_weights(weights), device)


def _build_random_conv(weights: str | Path | None, device: torch.device) -> Extractor:
    return RandomConvExtractor(device=device)


EXTRACTORS: dict[str, ExtractorBuilder] = {
    INCEPTION: _build_inception,
    "inception": _build_inception,  # short alias (the GAN config's default spelling)
    "random-conv": _build_random_conv,
}


def extractor_names() -> list[str]:
    return list(EXTRACTORS)


def build_extractor(
    weights: str | Path | None = None,
    device: torch.device | str | None = None,
    name: str = INCEPTION,
) -> Extractor:
    """The standard FID InceptionV3 by default; ``name`` picks another registered extractor."""
    if name not in EXTRACTORS:
        raise UserError(f"feature extractor {name!r}: choose one of {', '.join(EXTRACTORS)}")
    if device is None:
        device = resolve_device("auto")
    elif isinstance(device, str):
        device = resolve_device(device)
    return EXTRACTORS[name](weights, device)
