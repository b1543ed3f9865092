"""GAN run configuration: one dataclass whose defaults are the ``cli gan-train`` defaults, plus named
presets (``quick`` for a CPU demo, ``full`` for a GPU-sized run, ``photo`` beside the classifier's
photo preset) that override some of them; and the options of ``cli synthesize``.

Saved as ``runs/NAME/config.json`` and inside every checkpoint, so a run is rebuilt from either file.
This module imports no torch (the CLI reads its defaults while building ``--help``); the registries
it names (losses, DiffAugment parts, image sizes, G conditionings) are checked against it by the
tests.

The small-data options (issue 11) all default to the textbook cDCGAN, so a run with the defaults is
the run it always was: ``g_conditioning`` ("concat" or conditional BatchNorm, "cbn"), LeCam
regularisation (``lecam_*``), ADA-style adaptive augmentation strength (``ada_*``) and the R1
penalty (``r1_*``); see :mod:`augment.gan.regularizers` and :mod:`augment.gan.ada`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.presets import Presets
from core.split import DEFAULT_SPLIT_SEED, DEFAULT_VAL_FRACTION

IMAGE_SIZES = (32, 64, 128)  # augment.gan.models.IMAGE_SIZES
LOSS_NAMES = ("hinge", "bce")  # keys of augment.gan.losses.LOSSES
POLICY_PARTS = ("color", "translation", "cutout")  # keys of augment.gan.diffaugment.AUGMENT_FNS
DEFAULT_POLICY = "color,translation,cutout"  # the DiffAugment paper's policy for small data
G_CONDITIONINGS = ("concat", "cbn")  # keys of augment.gan.models.GENERATORS
MIN_TRUNCATION = 0.04  # Brock et al. 2019's smallest; below, resampling takes ever more rounds


@dataclass(frozen=True)
class GanConfig:
    """Everything needed to rebuild a GAN run."""

    data: str = "data/footwear"
    name: str = "gan"
    runs_dir: str = "runs"
    iterations: int = 3000  # one D step + one G step (per class model with per_class_models)
    batch_size: int = 64
    image_size: int = 32
    z_size: int = 128
    embed_dim: int = 128  # G's class embedding, concatenated to z (g_conditioning "concat")
    g_conditioning: str = "concat"  # "cbn": class-dependent BatchNorm gain and bias in G
    ngf: int = 32
    ndf: int = 32
    spectral_norm: bool = False
    minibatch_std: bool = False  # D sees the batch's feature std (Karras et al. 2018)
    lr: float = 2e-4  # Adam, DCGAN defaults (Radford et al. 2016)
    lr_d: float | None = None  # None: same as lr
    beta1: float = 0.5
    beta2: float = 0.999
    loss: str = "hinge"
    diffaugment: str = DEFAULT_POLICY  # "" disables
    # LeCam regularisation (Tseng et al. 2021): weight 0 = off (the paper: 0.3 with hinge loss).
    lecam_weight: float = 0.0
    lecam_decay: float = 0.99  # of the running means of D's real/fake outputs (the paper's)
    # Adaptive augmentation strength (Karras et al. 2020): None or 0 = off (DiffAugment always on).
    ada_target: float | None = None  # r_t = E[sign(D(real))] to aim at (ADA: 0.6)
    ada_interval: int = 4  # iterations between adjustments of p (ADA: 4)
    ada_kimg: float = 20.0  # thousand images for p to go 0 -> 1 (ADA: 500; see augment.gan.ada)
    # R1 penalty (Mescheder et al. 2018): gamma 0 = off; interval > 1: lazy (Karras et al. 2020).
    # Off by measurement: at the quick preset (6k iterations, GAN seeds 0-2, interval 4) gamma 0.01
    # and 0.1 gave overall FID 93.2 +- 8.2 and 95.1 +- 8.8 against 84.5 +- 8.5 without it, worse
    # for every class, CAS unchanged (README, "The budget").
    r1_gamma: float = 0.0
    r1_interval: int = 1
    ema_decay: float = 0.999
    # Sampling from the EMA generator: re-estimate its BatchNorm statistics over this many batches
    # of batch_size (Brock et al. 2019's standing statistics); 0: the raw G's copied statistics.
    # Measured on the footwear set (quick preset, GAN seeds 0-2, 3k-15k iterations): mean per-class
    # FID / floor 3.72 vs 4.28 (3k), 2.60 vs 2.80 (6k), 2.39 vs 2.48 (9k), 2.13 vs 2.12 (12k), 1.96
    # vs 2.04 (15k), with higher precision and coverage except at 12k (README, "The GAN was
    # under-trained").
    standing_stats: int = 32
    per_class_models: bool = False
    eval_every: int = 1000  # sample grid + FID/KID (+ last.pt); also at the end
    fid_samples: int = 240  # generated images per class for FID/KID; 0 disables FID
    feature_extractor: str = "inception"  # augment.fid registry key; "random-conv": a stand-in
    grid_columns: int = 10
    log_every: int = 50
    seed: int = 0
    # The study's validation split (core.split), held out so that what chooses was never learned
    # from: the same split seed and fraction as the classifiers that will train on its images.
    split_seed: int = DEFAULT_SPLIT_SEED
    val_fraction: float = DEFAULT_VAL_FRACTION
    use_all_train: bool = False  # learn from every train/ image (recorded; `cli train` warns)
    device: str = "auto"
    workers: int = 0
    resize_mode: str = "crop"
    strict: bool = False

    @property
    def d_learning_rate(self) -> float:
        return self.lr if self.lr_d is None else self.lr_d

    @property
    def ada_enabled(self) -> bool:
        return self.ada_target is not None and self.ada_target != 0

    def validate(self) -> GanConfig:
        """Raise a one-line :class:`UserError` for impossible settings; return ``self``."""
        for ok, message in (*self._shape_checks(), *self._regularizer_checks()):
            if not ok:
                raise UserError(message)
        parse_policy(self.diffaugment)
        return self

    def _shape_checks(self) -> list[tuple[bool, str]]:
        return [
            (
                self.image_size in IMAGE_SIZES,
                f"--image-size {self.image_size}: use one of {IMAGE_SIZES}",
            ),
            (self.loss in LOSS_NAMES, f"--loss {self.loss!r}: use one of {', '.join(LOSS_NAMES)}"),
            (
                self.g_conditioning in G_CONDITIONINGS,
                f"--g-conditioning {self.g_conditioning!r}: use one of {', '.join(G_CONDITIONINGS)}",
            ),
            (
                not (self.per_class_models and self.g_conditioning != "concat"),
                f"--g-conditioning {self.g_conditioning}: per-class models are unconditional; "
                "drop --per-class-models or use concat",
            ),
            (self.iterations >= 0, f"--iterations {self.iterations}: must be >= 0"),
            (self.split_seed >= 0, f"--split-seed {self.split_seed}: must be >= 0"),
            (
                0.0 <= self.val_fraction < 1.0,
                f"--val-fraction {self.val_fraction}: must be in [0, 1)",
            ),
            (self.batch_size >= 2, f"--batch-size {self.batch_size}: must be >= 2 (BatchNorm)"),
            (0.0 <= self.ema_decay < 1.0, f"--ema-decay {self.ema_decay}: must be in [0, 1)"),
            (
                self.standing_stats >= 0,
                f"--standing-stats {self.standing_stats}: must be >= 0 (0: off)",
            ),
            (self.eval_every >= 1, f"--eval-every {self.eval_every}: must be >= 1"),
            (
                self.fid_samples in (0,) or self.fid_samples >= 2,
                f"--fid-samples {self.fid_samples}: use 0 (off) or at least 2",
            ),
            (self.log_every >= 1, f"--log-every {self.log_every}: must be >= 1"),
            (
                min(self.ngf, self.ndf, self.z_size, self.embed_dim) >= 1,
                "widths and sizes must be >= 1",
            ),
            (self.lr > 0 and self.d_learning_rate > 0, "--lr / --lr-d must be positive"),
        ]

    def _regularizer_checks(self) -> list[tuple[bool, str]]:
        target = self.ada_target
        return [
            (self.lecam_weight >= 0, f"--lecam-weight {self.lecam_weight}: must be >= 0 (0: off)"),
            (0.0 <= self.lecam_decay < 1.0, f"--lecam-decay {self.lecam_decay}: must be in [0, 1)"),
            (
                target is None or 0.0 <= target < 1.0,
                f"--ada-target {target}: must be in (0, 1) (ADA: 0.6), or 0 for off",
            ),
            (
                not (self.ada_enabled and not parse_policy(self.diffaugment)),
                f'--ada-target {target}: adapts the DiffAugment policy, which is ""; give one',
            ),
            (self.ada_interval >= 1, f"--ada-interval {self.ada_interval}: must be >= 1"),
            (self.ada_kimg > 0, f"--ada-kimg {self.ada_kimg}: must be > 0"),
            (self.r1_gamma >= 0, f"--r1-gamma {self.r1_gamma}: must be >= 0 (0: off)"),
            (self.r1_interval >= 1, f"--r1-interval {self.r1_interval}: must be >= 1"),
        ]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GanConfig:
        known = {f.name for f in fields(cls)}
        legacy = {k: v for k, v in LEGACY_VALUES.items() if k not in data}
        return cls(**{k: v for k, v in data.items() if k in known}, **legacy)

    def with_overrides(self, **overrides: Any) -> GanConfig:
        return replace(self, **overrides)


# Presets override the dataclass defaults (the textbook cDCGAN); explicit options override a preset
# (``GAN_PRESETS.apply(GanConfig(), name, explicit)``, see core.presets).
GAN_PRESETS = Presets({
    # CPU demo at 32 px for 3 x 240 images. Measured on the footwear set (mean per-class FID of 240
    # samples against the 240 real ones): batch 64 x 1000 steps 313, + minibatch-std 272, batch
    # 32 x 2000 (same compute) 185-225, batch 32 x 3000 156; untrained 471. Longer runs over
    # seeds 0, 1, 2 with standing statistics (mean per-class FID / real-vs-real floor): 3,000
    # iterations 3.7x, 6,000 2.6x, 9,000 2.4x, 12,000 2.1x, 15,000 2.0x. 6,000 (5-8 min here) is
    # what fits the demo's 25 minutes (9,000 made it 27). FID is left to `synthesize`
    # (InceptionV3: ~0.08 s per image on 2 cores); grids are saved every 1,500 steps.
    "quick": {"image_size": 32, "ngf": 32, "ndf": 32, "batch_size": 32, "iterations": 6000,
              "minibatch_std": True, "eval_every": 1500, "fid_samples": 0},
    # A GPU-sized run in the spirit of the 64 px DCGAN: wider nets, more steps, FID every 2000.
    "full": {"image_size": 64, "ngf": 64, "ndf": 64, "batch_size": 64, "iterations": 20000,
             "minibatch_std": True, "eval_every": 2000, "fid_samples": 500},
    # RGB photos on one GPU, beside the classifier's photo preset (the GAN stays at 64 px, the
    # largest size a DCGAN trains reliably on a few hundred images; synthetic images are resized
    # to the classifier's 224 px). Twice full's iterations: ~217 GFLOP per iteration at batch 64
    # (torch.utils.flop_counter), minutes on an H100 (docs/photo-preset-times.md), FID every 5,000.
    "photo": {"image_size": 64, "ngf": 64, "ndf": 64, "batch_size": 64, "iterations": 40000,
              "minibatch_std": True, "eval_every": 5000, "fid_samples": 500},
})  # fmt: skip


# What a saved configuration without the field meant: runs saved before the field existed keep
# sampling as they always did.
LEGACY_VALUES: dict[str, Any] = {"standing_stats": 0}

# Fields a resumed run may change; anything else must match the checkpoint's configuration.
# (``standing_stats`` is not among them, so every checkpoint of a run says how it is sampled;
# ``cli synthesize --standing-stats`` samples a finished run otherwise.)
RESUMABLE_FIELDS = frozenset(
    {"iterations", "eval_every", "fid_samples", "log_every", "device", "workers"}
)


@dataclass(frozen=True)
class SynthConfig:
    """Options of ``cli synthesize`` (defaults are the CLI's)."""

    gan: str
    per_class: int = 500
    out: str | None = None  # None: synthetic/<gan run name>
    checkpoint: str = "best"
    seed: int = 0
    batch_size: int = 100
    filter_with: str | None = None  # a classifier run name or folder
    min_confidence: float = 0.9
    max_draw_factor: int = 20  # with a filter: stop drawing a class after this many x per_class
    # With a filter: draw oversample x per_class per class and keep the per_class most confidently
    # correct ones (ranked by the filter's probability of the intended class; no threshold).
    oversample: int | None = None
    overwrite: bool = False
    runs_dir: str = "runs"
    device: str = "auto"
    fid: bool = True
    # Score only the first N images of each class (FID/KID depend on the sample size: a fixed N
    # compares sets of any size, and costs InceptionV3 less); 0 or None: all of them. 240, the
    # default footwear set's training images per class, as `cli pipeline` and `gan-train --seeds`.
    score_per_class: int | None = 240
    untrained_reference: bool = True  # also score an untrained generator: FID's "chance level"
    feature_extractor: str = "inception"
    # Truncation trick (Brock et al. 2019): resample noise components with |z| > truncation.
    truncation: float | None = None  # None: plain N(0, 1) noise
    # Standing statistics of the EMA generator (batches; 0: off); None: the GAN run's own setting.
    standing_stats: int | None = None
    precision_recall_k: int = 3  # k-NN radii of precision/recall (Kynkaanniemi et al. 2019)
    density_coverage_k: int = 5  # k-NN radii of density/coverage (Naeem et al. 2020)

    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path("synthetic") / Path(self.gan).name

    def validate(self) -> SynthConfig:
        """Raise a one-line :class:`UserError` for impossible settings; return ``self``."""
        t = self.truncation
        checks = [
            (self.per_class >= 1, f"--per-class {self.per_class}: must be at least 1"),
            (self.batch_size >= 1, f"--batch-size {self.batch_size}: must be at least 1"),
            (
                self.oversample is None or (self.oversample >= 1 and self.filter_with),
                f"--oversample {self.oversample}: needs --filter-with RUN (the classifier that "
                "ranks the draws) and must be at least 1",
            ),
            (
                0.0 <= self.min_confidence <= 1.0,
                f"--min-confidence {self.min_confidence}: must be in [0, 1]",
            ),
            (
                t is None or t >= MIN_TRUNCATION,
                f"--truncation {t}: must be at least {MIN_TRUNCATION} (Brock et al. 2019 show "
                "0.04 to 2), or left out for plain noise",
            ),
            (
                self.standing_stats is None or self.standing_stats >= 0,
                f"--standing-stats {self.standing_stats}: must be >= 0 (0: off), or left out for "
                "the GAN run's own setting",
            ),
            (
                not self.score_per_class or self.score_per_class >= 2,
                f"--score-per-class {self.score_per_class}: must be at least 2 (a covariance "
                "needs two images), or 0 to score every image",
            ),
            (
                min(self.precision_recall_k, self.density_coverage_k) >= 1,
                "--precision-recall-k / --density-coverage-k must be >= 1",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)
        return self


def parse_policy(policy: str) -> tuple[str, ...]:
    """Split a DiffAugment policy such as ``"color,translation"`` into its parts, refusing unknown
    ones; ``""`` means no augmentation."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [p for p in names if p not in POLICY_PARTS]
    if unknown:
        raise UserError(
            f"--diffaugment {policy!r}: unknown part(s) {', '.join(unknown)}; use a "
            f'comma-separated subset of {",".join(POLICY_PARTS)} or "" to disable'
        )
    return names
