"""GAN training: ``train_gan(GanConfig) -> GanResult``, the library behind ``cli gan-train``.

One iteration is one discriminator step and one generator step (Goodfellow et al. 2014) for every
G/D pair: the conditional DCGAN is one pair; ``per_class_models`` trains one unconditional pair per
class, interleaved, each on its own class's images. The generated batch is made once per iteration:
D learns from it detached, then G is updated through the freshly stepped D (as in the PyTorch DCGAN
example). DiffAugment transforms real and fake images in both steps; the EMA generator follows G.

Only the training split is read. All randomness of a step (batch indices, noise, fake labels,
augmentations) comes from one CPU ``torch.Generator`` whose state is checkpointed, so on the CPU a run
stopped at iteration k and resumed ends with the same weights as an uninterrupted one. Ctrl-C
finishes the current iteration, writes ``last.pt`` and raises :class:`GanInterrupted`.
"""

from __future__ import annotations

import copy
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from augment.gan.config import GanConfig
from augment.gan.diffaugment import diff_augment
from augment.gan.ema import ema_decay_at, ema_update
from augment.gan.evaluate import (
    build_named_extractor,
    class_features,
    evaluate_generator,
)
from augment.gan.losses import LOSSES
from augment.gan.models import (
    PerClassDiscriminator,
    PerClassGenerator,
    build_discriminator,
    build_generator,
)
from augment.gan.run import (
    GanDisplay,
    Meter,
    check_gan_checkpoint,
    cpu_state,
    resume_gan_config,
    run_config_json,
    run_dir_of,
    train_record,
)
from augment.sampling import CHECKPOINT_FORMAT, sample_grid
from classify.training.run import images_sha256, now, versions
from core.data import ImageTensors, load_samples, scan_dataset, to_model_input, warn_skipped
from core.device import autocast, configure_cpu_threads, make_grad_scaler, resolve_device
from core.errors import UserError
from core.interrupts import InterruptGuard, RunInterrupted
from core.io import (
    append_jsonl,
    atomic_write_bytes,
    is_inside,
    load_checkpoint,
    prepare_run_dir,
    read_json,
    read_jsonl,
    truncate_jsonl,
    write_json,
)
from core.seeding import rng_state, seed_everything, set_rng_state


class GanInterrupted(RunInterrupted):
    """Training stopped (Ctrl-C or ``stop_after``); ``message`` says what was saved and how to resume."""


@dataclass
class GanResult:
    run_dir: Path
    iterations: int
    best_fid: float | None  # mean per-class FID of best.pt; None with FID off
    best_iteration: int
    last_eval: dict[str, Any] | None
    class_names: list[str]


@dataclass
class GanPair:
    """One G/D pair trained together, its optimizers and the images it learns from."""

    generator: nn.Module
    discriminator: nn.Module
    ema: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler_g: torch.amp.GradScaler
    scaler_d: torch.amp.GradScaler
    images: torch.Tensor  # uint8 N x 3 x S x S on the device
    labels: torch.Tensor  # labels as this pair's models see them (all 0 for a per-class model)
    num_classes: int


class GanTrainer:
    """Models, optimizers, randomness and bookkeeping of one run; see the module docstring."""

    def __init__(
        self,
        cfg: GanConfig,
        data: ImageTensors,
        device: torch.device,
        run_dir: Path,
        extractor: Any | None,
    ) -> None:
        self.cfg, self.data, self.device, self.run_dir = cfg, data, device, run_dir
        self.class_names = list(data.class_names)
        self.data_sha256 = images_sha256(data)
        self.extractor = extractor
        self.loss = LOSSES[cfg.loss]
        seed_everything(cfg.seed)  # model initialisation
        n_classes = len(self.class_names)
        self.G = build_generator(cfg, n_classes).to(device)
        self.D = build_discriminator(cfg, n_classes).to(device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.pairs = self._pairs()
        self.noise = torch.Generator().manual_seed(cfg.seed)  # every random draw of training
        self.iteration = 0
        self.best_fid: float | None = None
        self.best_iteration = 0
        self.last_eval: dict[str, Any] | None = None
        self.last_eval_iteration = -1
        self.meter = Meter()
        self.images_per_second = 0.0  # smoothed, for the progress bar only
        self.guard = InterruptGuard()
        self.real_features: list[np.ndarray] | None = None

    def _pairs(self) -> list[GanPair]:
        cfg, device = self.cfg, self.device
        images = self.data.images.to(device)
        labels = self.data.labels.to(device)
        if isinstance(self.G, PerClassGenerator) and isinstance(self.D, PerClassDiscriminator):
            triples = list(
                zip(self.G.generators, self.D.discriminators, self.G_ema.generators, strict=True)
            )
            subsets = [(images[labels == c], torch.zeros_like(labels[labels == c]), 1)
                       for c in range(len(triples))]  # fmt: skip
        else:
            triples = [(self.G, self.D, self.G_ema)]
            subsets = [(images, labels, len(self.class_names))]
        betas = (cfg.beta1, cfg.beta2)
        return [
            GanPair(g, d, ema,
                    torch.optim.Adam(g.parameters(), lr=cfg.lr, betas=betas),
                    torch.optim.Adam(d.parameters(), lr=cfg.d_learning_rate, betas=betas),
                    make_grad_scaler(device), make_grad_scaler(device), imgs, labs, n)
            for (g, d, ema), (imgs, labs, n) in zip(triples, subsets, strict=True)
        ]  # fmt: skip

    # -- one iteration -------------------------------------------------------------------------

    def step(self, pair: GanPair) -> dict[str, float]:
        cfg, device, noise = self.cfg, self.device, self.noise
        batch = cfg.batch_size
        index = torch.randint(len(pair.images), (batch,), generator=noise).to(device)
        z = torch.randn(batch, cfg.z_size, generator=noise).to(device)
        y_fake = torch.randint(pair.num_classes, (batch,), generator=noise).to(device)
        real, y_real = to_model_input(pair.images[index]), pair.labels[index]

        def augment(x: torch.Tensor) -> torch.Tensor:
            return diff_augment(x, cfg.diffaugment, noise)

        with autocast(device):
            fake = pair.generator(z, y_fake)
        # Discriminator step on a detached fake batch.
        pair.discriminator.requires_grad_(True)
        with autocast(device):
            d_real = pair.discriminator(augment(real), y_real).float()
            d_fake = pair.discriminator(augment(fake.detach()), y_fake).float()
            loss_d = self.loss.d_loss(d_real, d_fake)
        pair.opt_d.zero_grad(set_to_none=True)
        pair.scaler_d.scale(loss_d).backward()
        pair.scaler_d.step(pair.opt_d)
        pair.scaler_d.update()
        # Generator step through the updated D (its parameters frozen: no wasted gradients).
        pair.discriminator.requires_grad_(False)
        with autocast(device):
            loss_g = self.loss.g_loss(pair.discriminator(augment(fake), y_fake).float())
        pair.opt_g.zero_grad(set_to_none=True)
        pair.scaler_g.scale(loss_g).backward()
        pair.scaler_g.step(pair.opt_g)
        pair.scaler_g.update()
        pair.discriminator.requires_grad_(True)
        ema_update(pair.ema, pair.generator, ema_decay_at(self.iteration, cfg.ema_decay))
        return {
            "d_loss": loss_d.item(),
            "g_loss": loss_g.item(),
            "d_real_acc": (d_real > 0).float().mean().item(),
            "d_fake_acc": (d_fake < 0).float().mean().item(),
        }

    def iterate(self) -> dict[str, float]:
        """One iteration of every pair; returns the statistics averaged over pairs."""
        start = time.perf_counter()
        stats = [self.step(pair) for pair in self.pairs]
        self.iteration += 1
        means = {k: float(np.mean([s[k] for s in stats])) for k in Meter.KEYS}
        seconds = time.perf_counter() - start
        images = self.cfg.batch_size * len(self.pairs)
        self.meter.add(means, seconds, images)
        rate = images / max(seconds, 1e-9)
        self.images_per_second = (
            rate if self.images_per_second == 0 else (0.9 * self.images_per_second + 0.1 * rate)
        )
        if self.iteration % self.cfg.log_every == 0 or self.iteration == self.cfg.iterations:
            record = train_record(self.iteration, self.meter.means(), round(self.meter.seconds, 3),
                                  round(self.meter.images_per_second(), 1))  # fmt: skip
            append_jsonl(self.run_dir / "history.jsonl", record)
            self.meter = Meter()
        return means

    # -- evaluation and checkpoints ------------------------------------------------------------

    def prepare_fid(self, display: GanDisplay) -> None:
        """Features of the real training images per class (cached after the first time)."""
        if self.cfg.fid_samples <= 0:
            return
        if self.extractor is None:
            self.extractor = build_named_extractor(self.cfg.feature_extractor, self.device)
        advance = display.task("FID features of real train", len(self.data))
        self.real_features = class_features(
            self.data.images, self.data.labels, len(self.class_names), self.extractor,
            progress=advance,
        )  # fmt: skip

    def evaluate(self, display: GanDisplay) -> None:
        """Sample grid, per-class FID/KID, history line, last.pt and (if better) best.pt."""
        cfg, it = self.cfg, self.iteration
        start = time.perf_counter()
        grid = sample_grid(
            self.G_ema,
            self.class_names,
            columns=cfg.grid_columns,
            seed=cfg.seed,
            device=self.device,
            title=f"{cfg.name}: iteration {it} (EMA generator)",
        )
        buffer = io.BytesIO()
        grid.save(buffer, format="PNG")
        grid_path = Path("samples") / f"iter_{it:06d}.png"
        atomic_write_bytes(self.run_dir / grid_path, buffer.getvalue())
        result = None
        if cfg.fid_samples > 0 and self.real_features is not None:
            result = evaluate_generator(
                self.G_ema, self.class_names, self.real_features, self.extractor,
                samples_per_class=cfg.fid_samples, seed=cfg.seed, device=self.device,
            )  # fmt: skip
        with self.guard.critical():
            improved = result is None or self.best_fid is None or result["mean_fid"] < self.best_fid
            if improved:
                self.best_fid = None if result is None else result["mean_fid"]
                self.best_iteration = it
            self.last_eval, self.last_eval_iteration = result, it
            record = {
                "kind": "eval",
                "iteration": it,
                "grid": str(grid_path),
                "fid": result,
                "best": improved,
                "seconds": round(time.perf_counter() - start, 3),
            }
            append_jsonl(self.run_dir / "history.jsonl", record)
            payload = self.checkpoint_bytes()
            atomic_write_bytes(self.run_dir / "last.pt", payload)
            if improved:
                atomic_write_bytes(self.run_dir / "best.pt", payload)
        if result is not None:
            fids = ", ".join(f"{k} {v['fid']:.1f}" for k, v in result["per_class"].items())
            display.notice(f"iteration {it}: FID {fids} (mean {result['mean_fid']:.1f})"
                           + (" [best]" if improved else ""))  # fmt: skip

    def checkpoint(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.cfg.to_dict(),
            "class_names": self.class_names,
            "G": cpu_state(self.G),
            "D": cpu_state(self.D),
            "G_ema": cpu_state(self.G_ema),
            "optimizers": [
                {"G": p.opt_g.state_dict(), "D": p.opt_d.state_dict()} for p in self.pairs
            ],
            "scalers": [
                {"G": p.scaler_g.state_dict(), "D": p.scaler_d.state_dict()} for p in self.pairs
            ],  # fmt: skip
            "iteration": self.iteration,
            "noise_generator": self.noise.get_state(),
            "rng": rng_state(),
            "meter": self.meter.state_dict(),
            "best_fid": self.best_fid,
            "best_iteration": self.best_iteration,
            "last_eval": self.last_eval,
            "last_eval_iteration": self.last_eval_iteration,
            "data_sha256": self.data_sha256,
            "versions": versions(),
            "saved": now(),
        }

    def checkpoint_bytes(self) -> bytes:
        buffer = io.BytesIO()
        torch.save(self.checkpoint(), buffer)
        return buffer.getvalue()

    def restore(self, state: dict[str, Any]) -> None:
        if state["data_sha256"] != self.data_sha256:
            raise UserError(
                f"{self.run_dir / 'last.pt'}: the training images differ from the ones this run "
                "started with; resume with the same --data, or start a new --name"
            )
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])
        for pair, opt, scaler in zip(
            self.pairs, state["optimizers"], state["scalers"], strict=True
        ):
            pair.opt_g.load_state_dict(opt["G"])
            pair.opt_d.load_state_dict(opt["D"])
            pair.scaler_g.load_state_dict(scaler["G"])
            pair.scaler_d.load_state_dict(scaler["D"])
        self.iteration = int(state["iteration"])
        self.noise.set_state(state["noise_generator"])
        set_rng_state(state["rng"])
        self.meter.load_state_dict(state["meter"])
        self.best_fid, self.best_iteration = state["best_fid"], int(state["best_iteration"])
        self.last_eval = state["last_eval"]
        self.last_eval_iteration = int(state["last_eval_iteration"])


def train_gan(
    cfg: GanConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    extractor: Any | None = None,
    stop_after: int | None = None,
    on_iteration: Callable[[int], None] | None = None,
) -> GanResult:
    """Train a GAN into ``cfg.runs_dir/cfg.name`` (see the module docstring).

    ``resume``: continue from ``last.pt`` with the saved configuration (only
    :data:`~augment.gan.config.RESUMABLE_FIELDS` may change; ``iterations`` only upwards).
    ``extractor``: the FID feature extractor (default: InceptionV3 from :mod:`augment.fid`).
    ``stop_after``: behave as if Ctrl-C came after that iteration. ``on_iteration(i)`` is called
    after iteration ``i`` (and its evaluation) is complete; a KeyboardInterrupt from it acts as Ctrl-C.
    Raises :class:`UserError` for bad input and :class:`GanInterrupted` when stopped early.
    """
    cfg.validate()
    run_dir = run_dir_of(cfg)
    device = resolve_device(cfg.device)
    state = None
    if is_inside(run_dir, Path(cfg.data)):  # before prepare_run_dir creates anything there
        raise UserError(
            f"--runs-dir {cfg.runs_dir}: lies inside the dataset {cfg.data}; "
            "runs are never written into a dataset folder"
        )
    if resume or not overwrite:  # refuse early; an overwrite waits until the data has loaded
        prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
    if resume:
        state = load_checkpoint(run_dir / "last.pt")
        check_gan_checkpoint(state, run_dir / "last.pt")
        cfg = resume_gan_config(GanConfig.from_dict(state["config"]), cfg, run_dir).validate()
        if cfg.iterations < state["iteration"]:
            raise UserError(
                f"--iterations {cfg.iterations}: {run_dir} is already at iteration "
                f"{state['iteration']}; a resumed run may only be extended"
            )
    index = scan_dataset(Path(cfg.data))
    if is_inside(run_dir, index.root):
        raise UserError(
            f"--runs-dir {cfg.runs_dir}: lies inside the dataset {index.root}; "
            "runs are never written into a dataset folder"
        )
    if device.type == "cpu":
        configure_cpu_threads()
    else:
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels

    display = GanDisplay(progress)
    with display:
        data = load_samples(index.train, index.class_names, cfg.image_size,
                            resize_mode=cfg.resize_mode, workers=cfg.workers, strict=cfg.strict,
                            progress=display.task("decode train", len(index.train)))  # fmt: skip
    warn_skipped(data)
    if overwrite:
        prepare_run_dir(run_dir, resume=False, overwrite=True)
    trainer = GanTrainer(cfg, data, device, run_dir, extractor)
    _write_config(trainer, resume)
    if state is not None:
        trainer.restore(state)
        _truncate_history(run_dir / "history.jsonl", trainer.iteration)
    else:  # from the first moment on, an interrupted run can be resumed
        atomic_write_bytes(run_dir / "last.pt", trainer.checkpoint_bytes())
    _loop(trainer, display, stop_after, on_iteration)
    return GanResult(run_dir, trainer.iteration, trainer.best_fid, trainer.best_iteration,
                     trainer.last_eval, trainer.class_names)  # fmt: skip


def _write_config(trainer: GanTrainer, resume: bool) -> None:
    path = trainer.run_dir / "config.json"
    content = run_config_json(trainer.cfg, trainer.data, trainer.data_sha256)
    if resume and path.is_file():
        content["created"] = read_json(path).get("created", content["created"])
        content["resumed"] = now()
    write_json(path, content)


def _truncate_history(path: Path, iteration: int) -> None:
    """Drop history lines written after the checkpoint being resumed."""
    keep = sum(1 for record in read_jsonl(path) if record["iteration"] <= iteration)
    truncate_jsonl(path, keep)


def _loop(
    trainer: GanTrainer,
    display: GanDisplay,
    stop_after: int | None,
    on_iteration: Callable[[int], None] | None,
) -> None:
    cfg = trainer.cfg
    trainer.guard.on_deferred = lambda: display.notice(
        "stopping after this iteration to save the run (Ctrl-C again: stop at once, without saving)"
    )
    try:
        with trainer.guard, display:
            trainer.prepare_fid(display)  # minutes with InceptionV3 on a CPU, the first time
            display.start(cfg.name, cfg.iterations, trainer.iteration)
            while trainer.iteration < cfg.iterations:
                with trainer.guard.critical():
                    stats = trainer.iterate()
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
    cfg, run_dir = trainer.cfg, trainer.run_dir
    resume_cmd = f"cli gan-train --name {cfg.name} --runs-dir {cfg.runs_dir} --resume"
    if not trainer.guard.dirty:
        atomic_write_bytes(run_dir / "last.pt", trainer.checkpoint_bytes())
        return GanInterrupted(
            f"interrupted: {run_dir / 'last.pt'} holds iteration {trainer.iteration}; "
            f"continue with `{resume_cmd}`",
            run_dir,
            saved=True,
        )
    if (run_dir / "last.pt").is_file():
        return GanInterrupted(
            f"interrupted mid-step: {run_dir / 'last.pt'} holds the last saved state; "
            f"continue with `{resume_cmd}`",
            run_dir,
            saved=False,
        )
    return GanInterrupted(
        f"interrupted before any state was saved; start {run_dir} again with --overwrite",
        run_dir,
        saved=False,
    )
