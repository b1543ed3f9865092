"""ImageNet classifiers without a run folder, to predict and explain any photo: torchvision's
ImageNet weights of a model (``--pretrained imagenet``) or a local state dict in torchvision's
layout (``--weights FILE``), with ImageNet's 1000 classes.

The model is built as ``cli train --pretrained imagenet`` builds it
(:mod:`classify.training.init_weights`): width 1.0, a ResNet's ImageNet stem, ImageNet
normalisation inside the model (:mod:`classify.models.input_norm`), the weights' crop size, every
tensor checked and copied by :func:`classify.models.transfer.transfer_weights`; here the 1000-class
head is kept and the class names are ``weights.meta["categories"]``. :meth:`PhotoClassifier.
preprocess` prepares a photo as ``weights.transforms()`` prepares a PIL image (shorter side resized
to ``resize_size`` with its interpolation, centre crop to ``crop_size``) and keeps it uint8, so the
model's [-1, 1] input and its own normalisation give torchvision's logits on
``weights.transforms()(photo)`` (to float rounding). A file in torchvision's layout is read as the
weights of its architecture: the same transforms and categories apply.

The SE and CBAM gates of ``resnet50-se`` / ``resnet50-cbam`` have no ImageNet weights: they keep
their fresh initialisation (as when training starts from these weights), which one warning says,
since such a model's predictions and maps are not those of a trained network.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from classify.checkpoint import LoadedClassifier, target_device
from classify.image_files import load_photos
from classify.models import ModelConfig, build_model
from classify.models.hub import (
    cached_file,
    fetch_state_dict,
    imagenet_weights,
    read_state_dict,
    weights_name,
)
from classify.models.transfer import check_torchvision_config, is_gate_key, transfer_weights
from classify.names import MODEL_NAMES, PRETRAINED
from classify.training.config import TrainConfig
from core.device import memory_format
from core.errors import UserError

PHOTO_REPORTS = Path("reports")  # where explanations of photos go unless --out says otherwise


def photo_out_dir(model: str) -> Path:
    """The default folder of a photo explanation by ``model``: ``reports/explain-<model>``."""
    return PHOTO_REPORTS / f"explain-{model}"


@dataclass
class PhotoClassifier(LoadedClassifier):
    """A classifier from torchvision-layout ImageNet weights: no run folder (``run_dir`` None),
    ImageNet's class names, and the weights' own preprocessing (:meth:`preprocess`)."""

    weights: Any = None  # the torchvision WeightsEnum whose transforms and categories apply
    label: str = ""  # "ImageNet", or the weights file's name: what figure titles call the model

    @property
    def name(self) -> str:
        return self.label or self.model_config.name

    @property
    def source(self) -> str:
        if self.model_config.pretrained.startswith("file:"):
            return f"--weights {self.checkpoint_path.name}, read as {weights_name(self.weights)}"
        return f"torchvision {weights_name(self.weights)}"

    def preprocess(self, paths: Sequence[str | Path]) -> torch.Tensor:
        """Photos as uint8 N x 3 x crop x crop, resized and cropped as ``weights.transforms()``."""
        return load_photos(paths, self.weights.transforms())


def weights_option(pretrained: str | None, weights_file: str | Path | None) -> str:
    """The option that names the weights (``--pretrained imagenet`` or ``--weights FILE``; None:
    imagenet unless a file is given); a one-line error unless exactly one of them does."""
    if pretrained is None:
        pretrained = "imagenet" if weights_file is None else "none"
    if pretrained not in PRETRAINED:
        raise UserError(f"--pretrained {pretrained!r}: choose one of {', '.join(PRETRAINED)}")
    given = [f"--pretrained {pretrained}"] if pretrained != "none" else []
    given += [f"--weights {weights_file}"] if weights_file is not None else []
    if len(given) != 1:
        raise UserError(
            f"{' and '.join(given)}: each names the weights; use one"
            if given
            else "name the weights: --pretrained imagenet or --weights FILE"
        )
    return given[0]


def load_imagenet_classifier(
    model: str = "resnet50",
    pretrained: str | None = None,
    weights_file: str | Path | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> PhotoClassifier:
    """Model ``model`` (resnet50, an SE / CBAM variant, or vit-b16) with torchvision's ImageNet
    weights (``pretrained="imagenet"``, the default without ``weights_file``: from the torch.hub
    cache, or downloaded there) or those of ``weights_file``, in eval mode on ``device``."""
    option = weights_option(pretrained, weights_file)
    if model not in MODEL_NAMES:
        raise UserError(f"--model {model!r}: choose one of {', '.join(MODEL_NAMES)}")
    arch = check_torchvision_config(ModelConfig(name=model, width=1.0), option)
    weights = imagenet_weights(arch)
    categories = list(weights.meta["categories"])
    if weights_file is None:
        path = cached_file(weights)
        state = fetch_state_dict(weights, progress=progress)
        origin, label = f"torchvision:{weights_name(weights)}", "ImageNet"
    else:
        path = Path(weights_file)
        state = read_state_dict(path)
        origin, label = f"file:{path}", path.name
    config = ModelConfig(
        name=model,
        num_classes=len(categories),
        image_size=int(weights.transforms().crop_size[0]),
        width=1.0,
        stem="imagenet",
        input_norm="imagenet",
        pretrained=origin,
    )
    net = build_model(config)
    _check_head(state, net.head_name, len(categories), option)
    moved = transfer_weights(
        net, state, source=option, layout=f"torchvision {arch}", is_new=is_gate_key,
        replace_head=False,
    )  # fmt: skip
    if moved.new:
        warnings.warn(
            f"{option}: {model}'s {len(moved.new)} attention-gate tensors are not in torchvision's "
            f"{arch} and keep their random initialisation, so its predictions and maps are not "
            "those of a trained network; use --model resnet50 for ImageNet's own",
            stacklevel=2,
        )
    target = target_device(device)
    net = net.to(target, memory_format=memory_format(target)).eval()
    train_config = TrainConfig(
        model=model,
        image_size=config.image_size,
        width=1.0,
        pretrained="imagenet" if weights_file is None else "none",
        weights=None if weights_file is None else str(weights_file),
    )
    return PhotoClassifier(
        model=net,
        model_config=config,
        train_config=train_config,
        class_names=categories,
        run_dir=None,
        checkpoint_path=path,
        device=target,
        which=weights_name(weights) if weights_file is None else str(path),
        weights=weights,
        label=label,
    )


def _check_head(state: dict[str, torch.Tensor], head: str, classes: int, option: str) -> None:
    """A file fine-tuned to other classes has no class names here: refuse it in one line."""
    found = [v for k, v in state.items() if k.startswith(f"{head}.") and v.ndim == 2]
    if found and found[0].shape[0] != classes:
        raise UserError(
            f"{option}: its head ({head}) has {found[0].shape[0]} outputs, not ImageNet's {classes}, "
            "and a state dict carries no class names; pass an ImageNet classifier's weights (a "
            "model you trained here: pass its run instead)"
        )
