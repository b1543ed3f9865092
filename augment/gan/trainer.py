"""GAN training: ``train_gan(GanConfig) -> GanResult``, the library behind ``cli gan-train``.

Only the training part of the study's split is read (:mod:`core.split`; all of ``train/`` with
``--use-all-train``), and ``split.json`` records which images that was. The run folder goes through the lifecycle of :mod:`core.rundir`
(refusals before any data is read, creation once it has loaded, history truncation and config
stamps on resume); the models, one iteration and the evaluations are :mod:`augment.gan.engine`.
On the CPU a run stopped at iteration k and resumed ends with the same weights as an
uninterrupted one. Ctrl-C (or SIGTERM, :mod:`core.interrupts`) finishes the current iteration,
writes ``last.pt`` and raises :class:`GanInterrupted`. A refused ``--resume`` (other training
images) writes nothing: the run folder is left byte for byte as it was.

Under torchrun with several processes every rank calls ``train_gan``, as for the classifier
(:mod:`classify.training.trainer`): rank 0 opens the folder, takes its lock and shares the
checkpoint; ``--batch-size`` is the global batch (divisible by the number of ranks); a dead rank
ends the others with a one-line error. Resumed on the same number of processes a run continues
every rank's random stream; on another number, fresh seeded streams take over from there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augment.gan.config import GanConfig
from augment.gan.engine import GanTrainer
from augment.gan.run import check_gan_checkpoint, resume_gan_config, run_config_json
from core.data import ImageTensors, load_samples, scan_dataset, warn_skipped
from core.device import setup_device
from core.distributed import (
    DistConfig,
    check_batch_split,
    distributed_summary,
    peer_errors,
    same_on_every_rank,
    world_size,
)
from core.errors import UserError
from core.interrupts import RunInterrupted
from core.progress import GanDisplay
from core.ranks import AgreedStop, barrier
from core.resume import join_and_open, open_run
from core.rundir import RunDir, stop_notice
from core.split import SPLIT_FILE, SplitRecord, split_train

COMMAND = "gan-train"  # the CLI command an interrupted run is resumed with


class GanInterrupted(RunInterrupted):
    """Training stopped (Ctrl-C, SIGTERM or ``stop_after``); ``message`` says what was saved and
    how to resume."""


@dataclass
class GanResult:
    run_dir: Path
    iterations: int
    best_fid: float | None  # mean per-class FID of best.pt; None with FID off
    best_iteration: int
    last_eval: dict[str, Any] | None
    class_names: list[str]


def train_gan(
    cfg: GanConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    extractor: Any | None = None,
    stop_after: int | None = None,
    on_iteration: Callable[[int], None] | None = None,
    dist: DistConfig | None = None,
) -> GanResult:
    """Train a GAN into ``cfg.runs_dir/cfg.name`` (see the module docstring).

    ``resume``: continue from ``last.pt`` with the saved configuration (only
    :data:`~augment.gan.config.RESUMABLE_FIELDS` may change; ``iterations`` only upwards).
    ``extractor``: the FID feature extractor (default: InceptionV3 from :mod:`augment.fid`).
    ``stop_after``: behave as if Ctrl-C came after that iteration. ``on_iteration(i)`` is called
    after iteration ``i`` (and its evaluation) is complete; a KeyboardInterrupt from it acts as Ctrl-C.
    Raises :class:`UserError` for bad input and :class:`GanInterrupted` when stopped early.
    ``dist``: how several processes train (ignored in one process).
    """
    dist = (dist or DistConfig()).validate()
    opener = lambda: _open(cfg, resume, overwrite, dist)  # noqa: E731
    device, (run, state, cfg) = join_and_open(cfg.device, dist, opener)
    try:
        with peer_errors(f"the run stopped; continue with `{run.resume_command(COMMAND)}`"):
            device = device or setup_device(cfg.device, cudnn_benchmark=True)  # fixed shapes
            display = GanDisplay(progress)
            data, split, root = _load(cfg, display)
            run.begin(resume=resume, overwrite=overwrite, dataset_root=root)
            trainer = GanTrainer(cfg, data, device, run, extractor, sync_bn=dist.sync_bn)
            same_on_every_rank(trainer.data_sha256, "decoded training images")
            if state is not None:  # its refusals come before anything is written
                trainer.restore(state)
                run.truncate_history(trainer.iteration, key="iteration")
            content = run_config_json(cfg, data, trainer.data_sha256)
            content["dataset"]["split"] = split.summary()
            run.write_file(SPLIT_FILE, split.to_bytes())
            run.write_config(
                {**content, **distributed_summary(cfg.batch_size, dist)}, resume=resume
            )
            if state is None:  # from the first moment on, an interrupted run can be resumed
                run.save(trainer.checkpoint(), "last")
            _loop(trainer, display, stop_after, on_iteration)
            barrier()  # every rank returns once rank 0's files are complete
    finally:
        run.unlock()
    return GanResult(run.path, trainer.iteration, trainer.best_fid, trainer.best_iteration,
                     trainer.last_eval, trainer.class_names)  # fmt: skip


def _open(
    cfg: GanConfig, resume: bool, overwrite: bool, dist: DistConfig
) -> tuple[RunDir, dict[str, Any] | None, GanConfig]:
    """Refusals, the configuration to continue with, the run's lock (rank 0 alone)."""
    run, state, cfg = open_run(
        cfg,
        resume=resume,
        overwrite=overwrite,
        check=check_gan_checkpoint,
        reconcile=lambda saved, requested, path, state: resume_gan_config(
            saved, requested, path, reached=state["iteration"]
        ),
    )
    check_batch_split(cfg.batch_size, sync_bn=dist.sync_bn, smallest=cfg.batch_size)
    if world_size() > 1 and dist.sync_bn and cfg.r1_gamma > 0 and not cfg.spectral_norm:
        raise UserError(
            "--r1-gamma with several processes: R1 differentiates D twice, and SyncBatchNorm "
            "has no second derivative; add --spectral-norm (D without BatchNorm) or --local-bn"
        )
    run.lock(world_size())
    return run, state, cfg


def _load(cfg: GanConfig, display: GanDisplay) -> tuple[ImageTensors, SplitRecord, Path]:
    """The training part of the study's split (every rank decodes it; all of ``train/`` with
    ``--use-all-train``), the record of what it is, and the dataset's root."""
    index = scan_dataset(Path(cfg.data))
    with display:
        full = load_samples(index.train, index.class_names, cfg.image_size,
                            resize_mode=cfg.resize_mode, workers=cfg.workers, strict=cfg.strict,
                            progress=display.task("decode train", len(index.train)))  # fmt: skip
    warn_skipped(full)
    if cfg.use_all_train:
        return full, SplitRecord.of(full, seed=None, val_fraction=0.0, held_out=False), index.root
    data, _ = split_train(full, cfg.split_seed, cfg.val_fraction)
    record = SplitRecord.of(data, seed=cfg.split_seed, val_fraction=cfg.val_fraction)
    return data, record, index.root


def _loop(
    trainer: GanTrainer,
    display: GanDisplay,
    stop_after: int | None,
    on_iteration: Callable[[int], None] | None,
) -> None:
    cfg = trainer.cfg
    trainer.guard.on_deferred = lambda: display.notice(stop_notice("iteration"))
    try:
        with trainer.guard, display:
            trainer.prepare_fid(display)  # minutes with InceptionV3 on a CPU, the first time
            display.start(cfg.name, cfg.iterations, trainer.iteration)
            while trainer.iteration < cfg.iterations:
                with trainer.guard.critical():
                    stats = trainer.iterate()
                if isinstance(trainer.guard, AgreedStop) and trainer.guard.stop:
                    raise KeyboardInterrupt  # every rank, after the same iteration
                display.update(trainer.iteration, stats, trainer.images_per_second)
                if trainer.iteration % cfg.eval_every == 0:
                    trainer.evaluate(display)
                if on_iteration is not None:
                    on_iteration(trainer.iteration)
                if stop_after is not None and trainer.iteration >= stop_after:
                    raise KeyboardInterrupt
            if trainer.last_eval_iteration != trainer.iteration:
                trainer.evaluate(display)
    except KeyboardInterrupt:
        raise _interrupted(trainer) from None


def _interrupted(trainer: GanTrainer) -> GanInterrupted:
    """Save the consistent state reached (unless a second Ctrl-C broke a step) and say so."""
    run = trainer.run
    saved_now = None
    if not trainer.guard.dirty:
        run.save(trainer.checkpoint(), "last")
        saved_now = f"iteration {trainer.iteration}"
    if trainer.distributed:  # the others wait for rank 0's checkpoint (torchrun ends all at once)
        with contextlib.suppress(RuntimeError):
            barrier()
    held = "the last saved state (stopped mid-step)"
    message, saved = run.stop_report(COMMAND, saved_now=saved_now, held=held)
    return GanInterrupted(message, run.path, saved=saved)
