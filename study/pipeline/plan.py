"""What a pipeline run works on: the dataset, run names, paths and configs each step derives from
the :class:`PipelineConfig`, and the checks that say whether a step's outputs are complete.

Everything that depends on an earlier step's outputs (the best architecture, the augmented and CAS
configs, which copy a baseline run's config.json) is worked out lazily, when a step first asks, so
the plan can be made before any step has run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from classify.training.config import TrainConfig
from core.distributed import DistConfig
from core.errors import UserError
from core.io import read_json, read_jsonl
from core.manifest import MANIFEST, Manifest
from study.pipeline.config import PipelineConfig
from study.pipeline.recipes import GanRecipe, SyntheticImages, changed_settings, gan_config

if TYPE_CHECKING:
    from augment.gan.config import GanConfig, SynthConfig
    from classify.training.train_all import TrainAllOptions


@dataclass
class StudyPlan:
    """The pipeline's names and configs; ``data`` is the dataset, ``runs`` the runs folder."""

    cfg: PipelineConfig
    data: Path
    runs: Path
    dist: DistConfig = field(default_factory=DistConfig)  # how several processes train

    @property
    def prefix(self) -> str:
        """Every run, state and summary file of the study starts with the dataset's name."""
        return f"{self.data.name}-"

    @property
    def study_suffix(self) -> str:
        """The summary's and report's: ``-mixed`` for that GAN recipe, ``-r<R>`` for a ratio."""
        return self.cfg.study_suffix

    # --- baseline classifiers, one train-all per seed ---

    def baseline_config(self, seed: int) -> TrainConfig:
        return classifier_base(self.cfg, self.data, seed)

    def train_all_options(self, seed: int) -> TrainAllOptions:
        from classify.training.train_all import TrainAllOptions

        cfg = self.cfg
        return TrainAllOptions(
            cfg.models, f"{self.prefix}s{seed}-", cam_per_class=cfg.cam_per_class, resume=True
        )

    def models_json(self, seed: int) -> Path:
        return self.runs / f"{self.train_all_options(seed).prefix}models.json"

    @cached_property
    def summaries(self) -> list[dict[str, Any]]:
        """Each seed's train-all summary (models.json), read once the classifiers are done."""
        return [read_json(self.models_json(seed)) for seed in range(self.cfg.seeds)]

    @cached_property
    def best_model(self) -> str:
        """The best architecture by mean validation accuracy over seeds (ties: fewer parameters)."""
        return pick_architecture(self.summaries)

    # --- GAN and synthetic set ---

    @cached_property
    def gan_config(self) -> GanConfig:
        from augment.gan.config import GAN_PRESETS, GanConfig

        cfg = self.cfg
        explicit = {
            **cfg.gan,
            "data": str(self.data),
            "name": f"{self.prefix}gan",
            "runs_dir": cfg.gan_runs_dir or cfg.runs_dir,
            "device": cfg.gan.get("device", cfg.device),
            "feature_extractor": cfg.feature_extractor,
            # the classifiers' validation split, held out from the GAN too (core.split)
            "split_seed": cfg.split_seed,
            "val_fraction": self.baseline_config(0).val_fraction,
        }
        return GAN_PRESETS.apply(GanConfig(), cfg.preset, explicit)

    @property
    def gan_dir(self) -> Path:
        return Path(self.gan_config.runs_dir) / self.gan_config.name

    @property
    def synthetic(self) -> Path:
        return Path(self.cfg.synthetic_dir) / self.gan_config.name

    @cached_property
    def synth_config(self) -> SynthConfig:
        from augment.gan.config import SynthConfig

        cfg = self.cfg
        return SynthConfig(
            gan=self.gan_config.name,
            per_class=cfg.per_class,
            score_per_class=cfg.score_per_class or None,  # 0: every image
            out=str(self.synthetic),
            runs_dir=self.gan_config.runs_dir,
            device=cfg.device,
            feature_extractor=cfg.feature_extractor,
        )

    def manifest(self) -> Manifest:
        return Manifest.read(self.synthetic / MANIFEST)

    # --- augmented retraining, CAS and the report ---

    def baseline_dir(self, seed: int) -> Path:
        return self.runs / f"{self.prefix}s{seed}-{self.best_model}"

    def synthetic_images(self, seed: int) -> SyntheticImages:
        """The synthetic set as the seed's GAN arms take it."""
        return synthetic_images(self.baseline_dir(seed), self.synthetic, self.cfg.synthetic_ratio)

    def augmented_config(self, seed: int) -> TrainConfig:
        """Same architecture, seed, hyper-parameters and epochs as the seed's baseline, the
        synthetic images added by ``--gan-recipe`` (study.pipeline.recipes)."""
        name = f"{self.baseline_dir(seed).name}{self.cfg.augmented_suffix}"
        base = read_train_config(self.baseline_dir(seed))
        return gan_config(base, self.synthetic_images(seed), GanRecipe(self.cfg.gan_recipe), name)

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """(baseline run, augmented run) names, one pair per seed."""
        return [
            (self.baseline_dir(s).name, f"{self.baseline_dir(s).name}{self.cfg.augmented_suffix}")
            for s in range(self.cfg.seeds)
        ]

    def arm_run(self, seed: int, arm: str) -> str:
        """The run name of ``arm`` at ``seed`` (``real``: the baseline, ``real+gan``: augmented)."""
        from study.pipeline.arms import arm_suffix

        suffix = arm_suffix(arm, self.cfg.synthetic_ratio, self.cfg.gan_recipe)
        return f"{self.baseline_dir(seed).name}{suffix}"

    def arm_config(self, seed: int, arm: str) -> TrainConfig:
        """The arm's recipe on the seed's baseline config (same epochs; study.pipeline.arms); a
        teacher is the seed's baseline itself (real images, the same seed and validation split)."""
        from study.pipeline.arms import arm_config, parse_arm

        gan = parse_arm(arm, self.cfg.gan_recipe)[0] is not None
        images = self.synthetic_images(seed) if gan else None
        base = read_train_config(self.baseline_dir(seed))
        return arm_config(
            base,
            images,
            arm,
            self.arm_run(seed, arm),
            gan_recipe=self.cfg.gan_recipe,
            teacher=self.baseline_dir(seed).name,
        )

    def cas_config(self) -> TrainConfig:
        """The best architecture trained on the synthetic images only (the first seed's recipe)."""
        from study.cas import cas_config

        return cas_config(
            read_train_config(self.runs / self.pairs[0][0]),
            self.synthetic,
            f"{self.prefix}cas-{self.best_model}",
        )

    @property
    def report_dir(self) -> Path:
        return Path(self.cfg.reports_dir) / (
            f"{self.prefix}{self.best_model}-baseline-vs-augmented{self.study_suffix}"
        )


# --- configs and completeness checks ------------------------------------------------------------


def dataset_path(cfg: PipelineConfig) -> Path:
    if cfg.data:
        return Path(cfg.data)
    suffix = "" if cfg.train_per_class == 240 else f"-{cfg.train_per_class}"
    return Path(cfg.data_dir) / f"footwear{suffix}"


def classifier_base(cfg: PipelineConfig, data: Path, seed: int) -> TrainConfig:
    """Every classifier of the study starts here: the preset, the options given, and what initial
    weights imply for the options not given (:func:`classify.training.init_weights.
    with_source_defaults`: ImageNet weights train at their width and crop size)."""
    from classify.training.init_weights import with_source_defaults
    from classify.training.presets import CLASSIFIER_PRESETS

    explicit = {**cfg.classifier, "data": str(data), "runs_dir": cfg.runs_dir, "seed": seed,
                "split_seed": cfg.split_seed}  # fmt: skip
    explicit.setdefault("device", cfg.device)
    base = CLASSIFIER_PRESETS.apply(TrainConfig(), cfg.preset, explicit)
    return with_source_defaults(base, explicit)


def check_init_from(cfg: PipelineConfig) -> None:
    """With ``--init-from RUN`` every classifier of the study starts from that run's weights, which
    fit its architecture only: refuse, in one line and before any training, --models that name
    another one."""
    source = cfg.classifier.get("init_from")
    if source is None:
        return
    from classify.training.init_weights import source_defaults

    model = source_defaults(TrainConfig(init_from=source, runs_dir=cfg.runs_dir)).get("model")
    others = [m for m in cfg.models if model is not None and m != model]
    if others:
        raise UserError(
            f"--init-from {source}: a {model} run, whose weights fit no other model; pass "
            f"--models {model} (given: {','.join(cfg.models)})"
        )


def pick_architecture(summaries: list[dict[str, Any]]) -> str:
    """Mean best-epoch validation accuracy over seeds; ties to fewer parameters."""
    scores: dict[str, list[float]] = {}
    params: dict[str, int] = {}
    for summary in summaries:
        for row in summary["runs"]:
            scores.setdefault(row["model"], []).append(row["val_acc"] or 0.0)
            params[row["model"]] = row["params"]
    return min(scores, key=lambda m: (-sum(scores[m]) / len(scores[m]), params[m]))


def read_train_config(run_dir: Path) -> TrainConfig:
    return TrainConfig.from_dict(read_json(run_dir / "config.json")["train"])


def synthetic_images(baseline: Path, synthetic: Path, ratio: float | None) -> SyntheticImages:
    """The synthetic set beside the baseline run's real training split: all its images (the
    manifest's counts), or ``ratio`` per real training image of each class (rounded as
    :func:`classify.training.synthetic.select_synthetic` rounds)."""
    dataset = read_json(baseline / "config.json")["dataset"]
    if ratio is None:
        n_synthetic = sum((Manifest.read(synthetic / MANIFEST).counts or {}).values())
    else:
        n_synthetic = sum(round(ratio * n) for n in dataset["train_class_counts"].values())
    return SyntheticImages(str(synthetic), ratio, int(dataset["n_train"]), n_synthetic)


def check_same_settings(run_dir: Path, cfg: TrainConfig) -> None:
    """Refuse a finished run of ``cfg``'s name trained with other settings (another GAN recipe,
    an older version of the study): it is neither reused as if it were ``cfg``'s nor overwritten."""
    if not (run_dir / "config.json").is_file():
        return
    changed = changed_settings(read_train_config(run_dir), cfg)
    if changed:
        raise UserError(
            f"{run_dir}: trained with other settings than this study wants: {'; '.join(changed)} "
            "(another --gan-recipe, or an older study); move it away to train it anew, or run "
            "the study with the options it was made with"
        )


def gan_complete(run_dir: Path, iterations: int) -> bool:
    if not (run_dir / "last.pt").is_file():
        return False
    history = read_jsonl(run_dir / "history.jsonl")
    return (
        any(r.get("iteration", 0) >= iterations for r in history)
        and (run_dir / "best.pt").is_file()
    )


def synthetic_complete(folder: Path, per_class: int, checkpoint: Path | None = None) -> bool:
    """The set in ``folder`` has ``per_class`` images of every class and, given the GAN
    ``checkpoint`` it should come from, was drawn from that very file (a GAN trained further
    since, e.g. after its iterations were raised, makes the set stale)."""
    from core.io import sha256_file

    path = folder / MANIFEST
    if not path.is_file():
        return False  # synthesize writes into a temporary folder and renames it at the end
    manifest = Manifest.read(path)
    counts = manifest.counts or {}
    if not counts or min(counts.values()) < per_class:
        return False
    return checkpoint is None or manifest.checkpoint_sha256 == sha256_file(checkpoint)
