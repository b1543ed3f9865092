"""Settings of ``cli pipeline`` (torch-free, so ``--help`` is fast)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from augment.gan.config import GAN_PRESETS
from classify.training.presets import CLASSIFIER_PRESETS
from core.split import DEFAULT_SPLIT_SEED
from study.pipeline.recipes import DEFAULT_GAN_RECIPE, GanRecipe, gan_suffix

# The one-line error's fix when --data names no folder.
MISSING_DATA = (
    "folder not found; check the path (a dataset is DIR/train/<class>/ and DIR/test/<class>/; "
    "`cli data split PHOTOS --out DIR` makes one from a folder per class)"
)
# A pipeline preset names a classifier preset and a GAN preset (core.presets) at once.
PIPELINE_PRESETS = tuple(n for n in CLASSIFIER_PRESETS.names if n in GAN_PRESETS.names)


@dataclass(frozen=True)
class PipelineConfig:
    """The whole study: defaults are the CLI's."""

    data: str | None = None  # None: the embedded footwear set, data/footwear[-N]
    preset: str = "quick"  # classifier and GAN presets of the same name
    per_class: int = 500  # synthetic images per class
    # FID/KID, precision/recall, density/coverage of the first N synthetic images per class (as
    # many real test and untrained-G images): N fixed, so sets of any size and the GAN-seed
    # summaries (which score 240) compare; it also halves the InceptionV3 work. 0: every image.
    score_per_class: int = 240
    synthetic_ratio: float | None = None  # synthetic images per real one in the augmented run
    # How the GAN arms (the augmented run, every +gan arm) take the synthetic images
    # (study.pipeline.recipes): "separate", real exposure held fixed; "mixed", the older recipe.
    gan_recipe: str = DEFAULT_GAN_RECIPE
    seeds: int = 1  # classifier seeds (baseline and augmented runs each)
    # The validation split every run and the GAN hold out (core.split): the study's, not a seed's.
    split_seed: int = DEFAULT_SPLIT_SEED
    train_per_class: int = 240  # real training images per class (footwear-N, or a subset of --data)
    models: tuple[str, ...] = ("resnet50", "resnet50-se", "resnet50-cbam")
    # Training recipes of the best architecture set against "real" (study.pipeline.arms).
    arms: tuple[str, ...] = ("real", "real+gan")
    runs_dir: str = "runs"
    # Where the GAN run lives (None: runs_dir). A budget grid (study.pipeline.budgets) keeps each
    # budget's classifier runs in their own folder and shares one GAN and synthetic set.
    gan_runs_dir: str | None = None
    synthetic_dir: str = "synthetic"
    reports_dir: str = "reports"
    data_dir: str = "data"
    device: str = "auto"
    cas: bool = True
    cam_per_class: int = 4
    # Explicit overrides of the presets (None: keep the preset's value); the test suite shrinks
    # everything through these.
    classifier: dict[str, Any] = field(default_factory=dict)
    gan: dict[str, Any] = field(default_factory=dict)
    feature_extractor: str = "inception"

    @property
    def augmented_suffix(self) -> str:
        """``-aug`` (all synthetic images), ``-aug-r0.5`` with a synthetic ratio, ``-aug-mixed``
        (``-aug-mixed-r0.5``) with the mixed GAN recipe."""
        return gan_suffix(GanRecipe(self.gan_recipe), self.synthetic_ratio)

    @property
    def study_suffix(self) -> str:
        """What the study's summary and report names add: ``-mixed`` for that recipe, then
        ``-r<R>`` for a synthetic ratio (nothing for the defaults)."""
        return self.augmented_suffix.removeprefix("-aug")
