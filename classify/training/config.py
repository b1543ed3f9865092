"""Training configuration: one dataclass, whose defaults are also the CLI's defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("cosine", "onecycle", "none")
AUGMENTS = ("pad-crop", "resized-crop", "none")
TRAIN_ON = ("real", "synthetic")
DEFAULT_LR = {"sgd": 0.1, "adam": 1e-3, "adamw": 1e-3}


@dataclass
class TrainConfig:
    """Everything needed to rebuild a classifier run (saved as ``runs/NAME/config.json``)."""

    data: str = "data/footwear"
    model: str = "resnet50"
    name: str = "run"
    runs_dir: str = "runs"
    epochs: int = 30
    batch_size: int = 64
    lr: float | None = None  # None: DEFAULT_LR[optimizer]
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = False  # SGD only
    weight_decay: float = 5e-4
    scheduler: str = "cosine"
    warmup_epochs: float = 1.0  # linear warm-up of the cosine schedule (capped at 1/4 of the run)
    label_smoothing: float = 0.0
    image_size: int = 64
    width: float = 1.0
    cbam_pool_types: tuple[str, ...] = ("avg", "max")
    patch_size: int = 0  # ViT only: 0 = an 8 x 8 token grid
    vit_depth: int = 0  # ViT only: 0 = the named size's (vit-tiny 6, vit-small 8)
    vit_heads: int = 0  # ViT only: 0 = the named size's (vit-tiny 3, vit-small 6)
    resize_mode: str = "crop"
    augment: str = "pad-crop"
    hflip: bool = True
    val_fraction: float = 0.15
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    strict: bool = False
    synthetic: str | None = None  # folder of synthetic images (class sub-folders + manifest.json)
    synthetic_ratio: float | None = None  # synthetic images per real image; None: all of them
    train_on: str = (
        "real"  # "real": real (+ synthetic, if given); "synthetic": synthetic only (CAS)
    )
    epoch_size: int | None = None  # images drawn per epoch; None: the whole training set. An
    # augmented run sets it to the real set's size to take as many optimizer steps as its baseline.

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cbam_pool_types"] = list(self.cbam_pool_types)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "cbam_pool_types" in kwargs:
            kwargs["cbam_pool_types"] = tuple(kwargs["cbam_pool_types"])
        return cls(**kwargs)
