"""Where a run's initial weights come from: ``--pretrained imagenet`` (torchvision's weights of
``--model``), ``--weights FILE`` (a local state dict in torchvision's layout) or ``--init-from RUN``
(the ``best.pt`` of a classifier run of ours).

The source is read before any image is decoded (:func:`load_source`: a missing or wrong file fails
fast, in one line), shapes the model's configuration (:meth:`WeightsInit.model_config`: input
normalisation, ResNet stem, where the weights came from) and is copied into the freshly built,
seeded model (:meth:`WeightsInit.apply`, through :mod:`classify.models.transfer`). torchvision's
weights bring ImageNet input normalisation (inside the model, :mod:`classify.models.input_norm`)
and, for a ResNet, the ImageNet stem they were trained with, forced at any image size and said in
one line when ``auto`` would have picked the small one; a file in torchvision's layout is taken to be
ImageNet-trained like the weights of its architecture. A run of ours passes on its own
normalisation and stem; its architecture (model, width, CBAM pools, ViT shape) must be this run's.
A resumed run reads none of this again: its checkpoint holds the weights and the model config.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from classify.checkpoint import load_classifier
from classify.models import ModelConfig, build_model, is_vit
from classify.models.hub import fetch_state_dict, imagenet_weights, read_state_dict, weights_name
from classify.models.resnet import resolve_stem
from classify.models.transfer import (
    Transfer,
    check_torchvision_config,
    is_gate_key,
    torchvision_arch,
    transfer_weights,
)
from classify.models.vit import VIT_SIZES, default_patch_size
from classify.training.config import TrainConfig
from classify.training.run import model_config_of
from core.data import ImageTensors
from core.errors import UserError
from core.io import read_json
from core.rundir import resolve_run_dir
from core.split import check_learner, describe_split

SOURCE_CHECKPOINT = "best"
STEM_NOTES = {
    "imagenet": "the ImageNet stem (7x7 stride-2 conv + max-pool) the weights were trained with is used",
    "small": "the source run's small stem (3x3 stride-1 conv, no max-pool) is kept",
}


@dataclass
class InitSource:
    """Initial weights, read: the state dict and what config.json and the model config say."""

    option: str  # "--pretrained imagenet", "--weights FILE" or "--init-from RUN"
    state: dict[str, Tensor]
    pretrained: str  # ModelConfig.pretrained
    input_norm: str
    layout: str  # what the state dict is, for messages: "torchvision resnet50", "a resnet50 run"
    info: dict[str, Any]  # config.json's "init"
    stem: str | None = None  # the ResNet stem the weights need
    source_model: ModelConfig | None = None  # a run's
    class_names: list[str] | None = None  # a run's
    run_dir: Path | None = None
    split: str = ""  # this run's validation split in words (a run must not have trained on it)


def source_defaults(cfg: TrainConfig) -> dict[str, Any]:
    """The TrainConfig fields the initial weights imply, for the options a user did not give.

    torchvision's weights: width 1.0 and their crop size (``weights.transforms().crop_size``, 224
    for both architectures). A run of ours: its architecture (model, width, CBAM pools, ViT shape)
    and image size. None of it for a model without torchvision weights (refused later, in one line).
    """
    if cfg.pretrained != "none" or cfg.weights is not None:
        arch = torchvision_arch(cfg.model)
        if arch is None:
            return {}
        return {"width": 1.0, "image_size": int(imagenet_weights(arch).transforms().crop_size[0])}
    if cfg.init_from is not None:
        config = resolve_run_dir(cfg.init_from, cfg.runs_dir) / "config.json"
        if not config.is_file():
            return {}
        model = ModelConfig.from_dict(read_json(config).get("model", {}))
        fields = ("width", "image_size", "cbam_pool_types", "patch_size", "vit_depth", "vit_heads")
        return {"model": model.name, **{k: getattr(model, k) for k in fields}}
    return {}


def with_source_defaults(cfg: TrainConfig, given: Collection[str]) -> TrainConfig:
    """``cfg`` with :func:`source_defaults` for every field not in ``given`` (what `cli train`
    does for a new run, so a preset's small width or size does not apply to pretrained weights)."""
    return replace(cfg, **{k: v for k, v in source_defaults(cfg).items() if k not in given})


def load_source(cfg: TrainConfig, progress: bool = True) -> InitSource | None:
    """Read the initial weights ``cfg`` names (None: a random initialisation)."""
    option = cfg.init_source
    if option is None:
        return None
    if cfg.init_from is not None:
        return _run_source(cfg, option)
    arch = check_torchvision_config(model_config_of(cfg, 1), option)
    weights = imagenet_weights(arch)
    transforms = weights.transforms()
    info: dict[str, Any] = {
        "source": "imagenet" if cfg.pretrained != "none" else "file",
        "architecture": f"torchvision {arch}",
        "transforms": {
            "resize_size": list(transforms.resize_size),
            "crop_size": list(transforms.crop_size),
            "interpolation": transforms.interpolation.value,
            "mean": list(transforms.mean),
            "std": list(transforms.std),
        },
    }
    if cfg.weights is None:
        state = fetch_state_dict(weights, progress=progress)
        pretrained = f"torchvision:{weights_name(weights)}"
        metrics = weights.meta.get("_metrics", {}).get("ImageNet-1K", {})
        info.update(
            weights=weights_name(weights), url=weights.url, imagenet_acc1=metrics.get("acc@1")
        )
    else:
        path = Path(cfg.weights)
        state = read_state_dict(path)
        pretrained = f"file:{path}"
        info.update(file=str(path), sha256=_sha256(path), transforms_assumed=weights_name(weights))
    stem = "imagenet" if arch == "resnet50" else None
    return InitSource(option, state, pretrained, "imagenet", f"torchvision {arch}", info, stem)


def _run_source(cfg: TrainConfig, option: str) -> InitSource:
    assert cfg.init_from is not None
    loaded = load_classifier(cfg.init_from, SOURCE_CHECKPOINT, cfg.runs_dir, device="cpu")
    source = loaded.model_config
    stem = resolve_stem(source.stem, source.image_size) if not is_vit(source.name) else None
    info = {
        "source": "run",
        "run": str(loaded.run_dir),
        "checkpoint": str(loaded.checkpoint_path),
        "epoch": loaded.epoch,
        "val_acc": loaded.val_acc,
        "class_names": loaded.class_names,
    }
    state = {k: v.detach().cpu() for k, v in loaded.model.state_dict().items()}
    return InitSource(option, state, f"run:{loaded.checkpoint_path}", source.input_norm,
                      f"{source.name} run", info, stem, source, loaded.class_names,
                      loaded.run_dir, describe_split(cfg.split_seed, cfg.val_fraction))  # fmt: skip


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _architecture(cfg: ModelConfig) -> dict[str, Any]:
    """What must agree between a source run and this run (sizes resolved)."""
    out: dict[str, Any] = {"--model": cfg.name, "--width": cfg.width}
    if "cbam" in cfg.name:
        out["--cbam-pool-types"] = ",".join(cfg.cbam_pool_types)
    if is_vit(cfg.name):
        size = VIT_SIZES[cfg.name]
        out["--patch-size"] = cfg.patch_size or default_patch_size(cfg.name, cfg.image_size)
        out["--vit-depth"] = cfg.vit_depth or size.depth
        out["--vit-heads"] = cfg.vit_heads or size.heads
    return out


@dataclass
class WeightsInit:
    """The initial weights of a run: ``source`` on a fresh run; ``saved`` (the checkpoint's model
    config) on a resumed one, whose weights come from the checkpoint."""

    source: InitSource | None = None
    saved: dict[str, Any] | None = None

    def model_config(self, base: ModelConfig) -> ModelConfig:
        """``base`` (from the TrainConfig) with the source's normalisation, stem and name."""
        if self.saved is not None:
            keep = ("stem", "input_norm", "pretrained")
            return replace(base, **{k: self.saved[k] for k in keep if k in self.saved})
        source = self.source
        if source is None:
            return base
        if source.source_model is not None:
            ours, theirs = _architecture(base), _architecture(source.source_model)
            differ = [
                f"{k} {theirs[k]} (this run: {ours[k]})" for k in ours if ours[k] != theirs[k]
            ]
            if differ:
                raise UserError(
                    f"{source.option}: its model differs: {', '.join(differ)}; pass the source's "
                    "settings"
                )
        cfg = replace(base, input_norm=source.input_norm, pretrained=source.pretrained)
        if source.stem is None or is_vit(base.name):
            return cfg
        if resolve_stem(base.stem, base.image_size) != source.stem:
            warnings.warn(f"{source.option}: {STEM_NOTES[source.stem]} at {base.image_size} px "
                          "too, where a model from scratch takes the other one", stacklevel=2)  # fmt: skip
        return replace(cfg, stem=source.stem)

    def check(self, cfg: TrainConfig) -> WeightsInit:
        """Refuse, before any image is decoded or the run folder made, a source that would not
        fit the model (checked on a meta-device copy, which allocates nothing); return self."""
        source = self.source
        if source is None or self.saved is not None:
            return self
        classes = len(source.class_names) if source.class_names is not None else 1000
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # said once, when the real model is built
            model_cfg = self.model_config(model_config_of(cfg, classes))
        with torch.device("meta"):
            model = build_model(model_cfg)
        self._transfer(model, load=False)
        return self

    def _transfer(self, model: nn.Module, load: bool, replace_head: bool | None = None) -> Transfer:
        assert self.source is not None
        return transfer_weights(
            model,
            self.source.state,
            source=self.source.option,
            layout=self.source.layout,
            is_new=is_gate_key if self.source.source_model is None else (lambda key: False),
            replace_head=replace_head,
            load=load,
        )

    def apply(
        self, model: nn.Module, class_names: list[str], val: ImageTensors | None = None
    ) -> dict[str, Any]:
        """Copy the source into ``model`` (just built); config.json's "init" ({} without one).
        ``val``: this run's validation images, which a source run must not have trained on."""
        source = self.source
        if source is None or self.saved is not None:
            return {}
        replace_head = None
        if source.class_names is not None:
            assert source.run_dir is not None
            if val is not None:
                check_learner("--init-from", source.run_dir, val, source.split)
            replace_head = source.class_names != class_names
        moved = self._transfer(model, load=True, replace_head=replace_head)
        if moved.head_replaced:
            head, new = model.head_name, f"a new {len(class_names)}-class one"
            if source.class_names is not None:
                said = f"trained on classes {source.class_names}, this run has {class_names}: "
                said += f"the classifier head ({head}) is replaced by {new}"
            else:
                said = f"its {_head_outputs(source.state, head)}-class head ({head}) is replaced "
                said += f"by {new}"
            warnings.warn(f"{source.option}: {said}", stacklevel=2)
        source.state = {}  # copied into the model: let the file's tensors go
        return {
            **source.info,
            "option": source.option,
            "loaded_tensors": len(moved.loaded),
            "new_tensors": len(moved.new),
            "head_replaced": moved.head_replaced,
        }


def _head_outputs(state: dict[str, Tensor], head: str) -> int:
    weight = [v for k, v in state.items() if k.startswith(f"{head}.") and v.ndim == 2]
    return int(weight[0].shape[0]) if weight else 0
