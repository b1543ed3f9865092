"""Training configuration: one frozen dataclass, whose defaults are also the CLI's defaults, and
its checks (:meth:`TrainConfig.validate`). The name tuples here are the registries' keys (the tests
check they agree), so this module and ``--help`` need no torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from classify.augment_spec import CROPS, parse_augment
from core.errors import UserError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("cosine", "onecycle", "none")
AUGMENTS = CROPS  # classify.transforms.AUGMENTATIONS; --augment may add a policy and a mix
TRAIN_ON = ("real", "synthetic")
DEFAULT_LR = {"sgd": 0.1, "adam": 1e-3, "adamw": 1e-3}


@dataclass(frozen=True)
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
    augment: str = "pad-crop"  # crop[,policy][,mix]: see classify.augment_spec
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

    def validate(self) -> TrainConfig:
        """Raise a one-line :class:`UserError` for any setting no run can use; return ``self``."""
        from classify.models import model_names  # torch, only when a run is about to start
        from core.names import RESIZE_MODES

        _choice("--model", self.model, model_names())
        _choice("--optimizer", self.optimizer, OPTIMIZERS)
        _choice("--scheduler", self.scheduler, SCHEDULERS)
        parse_augment(self.augment)
        _choice("--resize-mode", self.resize_mode, RESIZE_MODES)
        _choice("--train-on", self.train_on, TRAIN_ON)
        name = self.name
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise UserError(
                f"--name {name!r}: use a plain folder name (no slashes), e.g. resnet50-cbam"
            )
        for ok, message in self._checks():
            if not ok:
                raise UserError(message)
        return self

    def _checks(self) -> list[tuple[bool, str]]:
        return [
            (self.epochs >= 1, f"--epochs {self.epochs}: must be >= 1"),
            (self.batch_size >= 2, f"--batch-size {self.batch_size}: must be >= 2 (BatchNorm)"),
            (self.lr is None or self.lr > 0, f"--lr {self.lr}: must be > 0"),
            (0 <= self.momentum < 1, f"--momentum {self.momentum}: must be in [0, 1)"),
            (self.weight_decay >= 0, f"--weight-decay {self.weight_decay}: must be >= 0"),
            (self.warmup_epochs >= 0, f"--warmup-epochs {self.warmup_epochs}: must be >= 0"),
            (
                0 <= self.label_smoothing < 1,
                f"--label-smoothing {self.label_smoothing}: must be in [0, 1)",
            ),
            (
                0 <= self.val_fraction < 1,
                f"--val-fraction {self.val_fraction}: must be in [0, 1)",
            ),
            (self.seed >= 0, f"--seed {self.seed}: must be >= 0"),
            (self.workers >= 0, f"--workers {self.workers}: must be >= 0"),
            (self.width > 0, f"--width {self.width}: must be > 0 (e.g. 0.25 or 1.0)"),
            (self.image_size >= 8, f"--image-size {self.image_size}: use at least 8 px"),
            (
                self.epoch_size is None or self.epoch_size >= 2,
                f"--epoch-size {self.epoch_size}: must be >= 2 images",
            ),
            (
                self.synthetic_ratio is None or self.synthetic_ratio >= 0,
                f"--synthetic-ratio {self.synthetic_ratio}: must be >= 0",
            ),
            (
                not self.nesterov or (self.optimizer == "sgd" and self.momentum > 0),
                "--nesterov: needs --optimizer sgd with --momentum > 0",
            ),
        ]

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


def _choice(option: str, value: str, choices: Any) -> None:
    if value not in choices:
        raise UserError(f"{option} {value!r}: choose one of {', '.join(choices)}")
