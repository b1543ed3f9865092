"""Classification Accuracy Score (Ravuri & Vinyals 2019): train a classifier on synthetic images
only, test it on the real test set. A second opinion on a GAN next to FID, which is strongly biased
at a few hundred images: CAS asks whether the synthetic images carry the classes' information.

The classifier keeps the real validation split (carved from the real training images, as in every
run: the one the generator held out, :mod:`core.split`) for choosing its best epoch; its training images are synthetic only. The result is written
into the synthetic set's manifest (key "cas"), next to the same architecture's real-data accuracy
when a real baseline run is named.

Under torchrun with several processes every rank calls :func:`run_cas`: the training and the test
evaluation are shared out as ``cli train`` and ``cli evaluate`` share them; rank 0 decides what is
left to do, reads the metrics and writes the manifest, and every rank returns its result.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from classify.training.config import TrainConfig
from core.errors import UserError
from core.manifest import MANIFEST, Manifest

if TYPE_CHECKING:
    from core.distributed import DistConfig


def synthetic_dataset(synthetic: str | Path) -> str:
    """The real dataset a synthetic set was made from (its manifest's "dataset")."""
    manifest_path = Path(synthetic) / MANIFEST
    if not manifest_path.is_file():
        raise UserError(f"{manifest_path}: missing; pass a folder written by `cli synthesize`")
    data = Manifest.read(manifest_path).dataset
    if not data:
        raise UserError(f"{manifest_path}: names no dataset; pass --data DIR")
    return str(data)


def cas_config(base: TrainConfig, synthetic: str | Path, name: str) -> TrainConfig:
    """Train on the synthetic images only, validating on the split its generator held out (read
    from the manifest; ``base``'s when the set records none)."""
    cfg = replace(
        base, name=name, synthetic=str(synthetic), synthetic_ratio=None, train_on="synthetic"
    )
    manifest_path = Path(synthetic) / MANIFEST
    split = Manifest.read(manifest_path).split if manifest_path.is_file() else None
    if split is not None and split.held_out and split.seed is not None:
        cfg = replace(cfg, split_seed=split.seed, val_fraction=split.val_fraction)
    return cfg


def run_cas(
    cfg: TrainConfig,
    *,
    baseline_run: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    dist: DistConfig | None = None,
) -> dict[str, Any]:
    """Train ``cfg`` (synthetic only), evaluate it on the real test set and annotate the manifest.
    ``dist``: how several processes train (ignored in one process)."""
    from classify.evaluation.evaluate import evaluate_run
    from classify.training.trainer import train
    from core.device import join_group
    from core.distributed import DistConfig, on_main
    from core.evaldir import evaluation_current, read_metrics
    from core.rundir import training_complete

    if cfg.synthetic is None or cfg.train_on != "synthetic":
        raise ValueError("run_cas needs a config made by cas_config")
    dist = (dist or DistConfig()).validate()
    join_group(cfg.device, dist.dist_timeout)  # rank 0 decides from here on
    run_dir = Path(cfg.runs_dir) / cfg.name
    if not on_main(lambda: resume and training_complete(run_dir, cfg.total_epochs)):
        partial = on_main(lambda: resume and (run_dir / "last.pt").is_file())
        train(cfg, resume=partial, overwrite=overwrite and not partial, dist=dist)
    metrics = (
        on_main(lambda: read_metrics(run_dir))
        if on_main(lambda: evaluation_current(run_dir))
        else evaluate_run(run_dir, "best", device=cfg.device)  # every rank: what rank 0 wrote
    )
    return on_main(lambda: _annotate(cfg, metrics, baseline_run))


def _annotate(
    cfg: TrainConfig, metrics: dict[str, Any], baseline_run: str | Path | None
) -> dict[str, Any]:
    """The CAS result, beside the baseline's accuracy, written into the set's manifest."""
    from core.evaldir import read_metrics

    result: dict[str, Any] = {
        "run": cfg.name,
        "model": cfg.model,
        "epochs": cfg.epochs,
        "test_acc": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "per_class_recall": {c: v["recall"] for c, v in metrics["per_class"].items()},
        "n_test": metrics["n_test"],
    }
    if baseline_run is not None:
        base = read_metrics(Path(baseline_run))
        result["real_baseline"] = {
            "run": Path(baseline_run).name,
            "test_acc": base["accuracy"],
            "macro_f1": base["macro_f1"],
        }
    manifest_path = Path(cfg.synthetic) / MANIFEST  # type: ignore[arg-type]
    replace(Manifest.read(manifest_path), cas=result).write(manifest_path)
    return result
