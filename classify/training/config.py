"""Training configuration: one frozen dataclass, whose defaults are also the CLI's defaults, and
its checks (:meth:`TrainConfig.validate`) against the names of :mod:`classify.names`, so this module
and ``--help`` need no torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from classify.classical.spec import parse_augment
from classify.names import (
    OPTIMIZERS,
    PRETRAINED,
    SCHEDULERS,
    SYNTHETIC_BN,
    SYNTHETIC_LABELS,
    TRAIN_ON,
)
from core.errors import UserError
from core.split import DEFAULT_SPLIT_SEED, DEFAULT_VAL_FRACTION

FINETUNE_LR_FACTOR = 0.01  # --finetune-lr default: this times the base learning rate
# Per optimizer: its peak learning rate and weight decay when --lr / --weight-decay are not given.
# AdamW is the default: from scratch on a few hundred images per class it beat SGD (lr 0.1) on two
# Fashion-MNIST sets (bench/default_recipe.py; README "Defaults"). SGD stays selectable.
DEFAULT_LR = {"sgd": 0.1, "adam": 1e-3, "adamw": 2e-3}
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adam": 0.0, "adamw": 0.05}


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
    optimizer: str = "adamw"
    momentum: float = 0.9  # SGD only
    nesterov: bool = False  # SGD only
    weight_decay: float | None = None  # None: DEFAULT_WEIGHT_DECAY[optimizer]
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
    augment: str = "pad-crop"  # crop[,policy][,mix]: see classify.classical.spec
    hflip: bool = True
    val_fraction: float = DEFAULT_VAL_FRACTION
    split_seed: int = DEFAULT_SPLIT_SEED  # the validation split's seed (core.split), not --seed's
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
    # How the synthetic images are trained on (classify.training.synthetic_exposure):
    synthetic_batch: int = 0  # 0: mixed batches; B > 0: a full real batch + B synthetic per step
    synthetic_weight: float = 1.0  # weight of the synthetic images' loss
    synthetic_labels: str = "hard"  # hard: the GAN's class; teacher: a real run's soft targets
    teacher: str | None = None  # classifier run (folder or name under runs_dir) for "teacher"
    temperature: float = 2.0  # the teacher's softmax temperature
    synthetic_bn: str = "shared"  # separate: auxiliary BatchNorm for synthetic images
    finetune_real_epochs: int = 0  # epochs on the real images only after ``epochs``
    finetune_lr: float | None = None  # constant lr then; None: FINETUNE_LR_FACTOR * learning_rate
    # Initial weights, at most one source (classify.training.init_weights). With torchvision's
    # weights the model normalises its input as they expect and a ResNet takes the ImageNet stem;
    # `cli train` then defaults --image-size to the weights' crop size (init_weights.default_image_size).
    pretrained: str = "none"  # "imagenet": torchvision's ImageNet weights of --model
    weights: str | None = None  # a local state dict in torchvision's layout (resnet50, vit_b_16)
    init_from: str | None = None  # a classifier run (folder or name under runs_dir): its best.pt
    freeze_backbone_epochs: int = 0  # the first K epochs train only the head and new gates

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    def resolved(self, name: str) -> Any:
        """A field's value in effect: ``lr`` and ``weight_decay`` resolve None to the optimizer's
        default, so ``--lr 2e-3`` and the AdamW default compare equal."""
        if name == "lr":
            return self.learning_rate
        if name == "weight_decay":
            return self.decay
        return getattr(self, name)

    @property
    def decay(self) -> float:
        """The weight decay in effect: ``weight_decay``, or the optimizer's default."""
        if self.weight_decay is not None:
            return self.weight_decay
        return DEFAULT_WEIGHT_DECAY[self.optimizer]

    @property
    def finetune_learning_rate(self) -> float:
        if self.finetune_lr is not None:
            return self.finetune_lr
        return FINETUNE_LR_FACTOR * self.learning_rate

    @property
    def total_epochs(self) -> int:
        """The main epochs plus the real-only fine-tuning epochs after them."""
        return self.epochs + self.finetune_real_epochs

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
        _choice("--synthetic-labels", self.synthetic_labels, SYNTHETIC_LABELS)
        _choice("--synthetic-bn", self.synthetic_bn, SYNTHETIC_BN)
        _choice("--pretrained", self.pretrained, PRETRAINED)
        name = self.name
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise UserError(
                f"--name {name!r}: use a plain folder name (no slashes), e.g. resnet50-cbam"
            )
        for ok, message in self._checks() + self._recipe_checks() + self._init_checks():
            if not ok:
                raise UserError(message)
        return self

    def _checks(self) -> list[tuple[bool, str]]:
        return [
            (self.epochs >= 1, f"--epochs {self.epochs}: must be >= 1"),
            (self.batch_size >= 2, f"--batch-size {self.batch_size}: must be >= 2 (BatchNorm)"),
            (self.lr is None or self.lr > 0, f"--lr {self.lr}: must be > 0"),
            (0 <= self.momentum < 1, f"--momentum {self.momentum}: must be in [0, 1)"),
            (
                self.weight_decay is None or self.weight_decay >= 0,
                f"--weight-decay {self.weight_decay}: must be >= 0",
            ),
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
            (self.split_seed >= 0, f"--split-seed {self.split_seed}: must be >= 0"),
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

    def _recipe_checks(self) -> list[tuple[bool, str]]:
        from classify.models import is_vit

        batch, has_synthetic = self.synthetic_batch, self.synthetic is not None
        teacher = self.synthetic_labels == "teacher"
        separate = self.synthetic_bn == "separate"
        return [
            (batch >= 0, f"--synthetic-batch {batch}: must be >= 0 (0: mixed batches)"),
            (
                self.synthetic_weight >= 0,
                f"--synthetic-weight {self.synthetic_weight}: must be >= 0",
            ),
            (self.temperature > 0, f"--temperature {self.temperature}: must be > 0"),
            (
                self.finetune_real_epochs >= 0,
                f"--finetune-real-epochs {self.finetune_real_epochs}: must be >= 0",
            ),
            (
                self.finetune_lr is None or self.finetune_lr > 0,
                f"--finetune-lr {self.finetune_lr}: must be > 0",
            ),
            (
                has_synthetic or (batch == 0 and self.synthetic_weight == 1 and not teacher),
                "--synthetic-batch, --synthetic-weight and --synthetic-labels teacher need "
                "--synthetic DIR (a `cli synthesize` folder)",
            ),
            (
                batch == 0 or self.train_on == "real",
                f"--synthetic-batch {batch}: needs --train-on real (real batches to add to)",
            ),
            (
                self.finetune_real_epochs == 0 or self.train_on == "real",
                "--finetune-real-epochs: needs --train-on real (the run holds no real images)",
            ),
            (
                not teacher or self.teacher is not None,
                "--synthetic-labels teacher: needs --teacher RUN_DIR (a real-trained run)",
            ),
            (
                teacher or self.teacher is None,
                "--teacher: only used with --synthetic-labels teacher; add it or drop --teacher",
            ),
            (
                not separate or batch >= 2,
                "--synthetic-bn separate: needs --synthetic-batch >= 2 (the auxiliary BatchNorm "
                "trains on the synthetic part of each step)",
            ),
            (
                not separate or not is_vit(self.model),
                f"--synthetic-bn separate: {self.model} has no BatchNorm; use a ResNet",
            ),
        ]

    @property
    def init_source(self) -> str | None:
        """The option giving the initial weights (``--pretrained imagenet``, ``--weights FILE``,
        ``--init-from RUN``), or None for a random initialisation."""
        sources = self._init_sources()
        return sources[0] if sources else None

    def _init_sources(self) -> list[str]:
        given = [
            (self.pretrained != "none", f"--pretrained {self.pretrained}"),
            (self.weights is not None, f"--weights {self.weights}"),
            (self.init_from is not None, f"--init-from {self.init_from}"),
        ]
        return [option for ok, option in given if ok]

    def _init_checks(self) -> list[tuple[bool, str]]:
        freeze = self.freeze_backbone_epochs
        return [
            (
                len(self._init_sources()) <= 1,
                f"{' and '.join(self._init_sources())}: each gives the initial weights; use one",
            ),
            (freeze >= 0, f"--freeze-backbone-epochs {freeze}: must be >= 0"),
            (
                freeze == 0 or self.init_source is not None,
                "--freeze-backbone-epochs: needs initial weights to freeze (--pretrained imagenet, "
                "--weights FILE or --init-from RUN)",
            ),
            (
                freeze <= self.epochs,
                f"--freeze-backbone-epochs {freeze}: at most --epochs {self.epochs}",
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
