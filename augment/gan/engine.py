"""One GAN run's models, optimizers, randomness and bookkeeping, the loop over its G/D pairs, and the
evaluations that write the sample grids, history lines and checkpoints.

One iteration is one discriminator step and one generator step (Goodfellow et al. 2014) for every
G/D pair (:mod:`augment.gan.step`): the conditional DCGAN is one pair; ``per_class_models`` trains
one unconditional pair per class, each on its own class's images. All randomness of a step (batch
indices, noise, fake labels, augmentations) comes from one CPU ``torch.Generator`` whose state is
checkpointed, and so are the regularisers' running statistics (LeCam's anchors, ADA's p).

With several processes (:mod:`core.distributed`) every G and D is wrapped in
DistributedDataParallel, with SyncBatchNorm unless ``sync_bn`` is off (:mod:`core.ddp`); the
global ``batch_size`` is split evenly; each rank draws from its own generator, seeded from (seed,
rank) (:func:`core.ranks.rank_generator`), and the checkpoint keeps every rank's state. The
statistics of an iteration are averaged over the ranks in one all-reduce that also carries the
Ctrl-C votes; the FID features are computed sharded (:mod:`augment.fid.features`); rank 0 draws
the grids and writes.
"""

from __future__ import annotations

import copy
import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from augment.gan.config import GanConfig
from augment.gan.evaluate import build_named_extractor, class_features, evaluate_generator
from augment.gan.losses import LOSSES
from augment.gan.models import (
    PerClassDiscriminator,
    PerClassGenerator,
    build_discriminator,
    build_generator,
)
from augment.gan.run import Meter, cpu_state, train_record
from augment.gan.step import GanPair, PairStep, regularizers_for, stat_keys
from augment.sampling import CHECKPOINT_FORMAT, sample_grid, sampler
from core.data import ImageTensors
from core.ddp import data_parallel
from core.device import make_grad_scaler
from core.distributed import is_active, is_main, rank, refuse, world_size
from core.progress import GanDisplay
from core.ranks import AgreedStop, all_sum, gather_objects, make_guard, rank_generator
from core.rundir import CONFIG_KEY, RunDir, images_sha256, now, versions
from core.seeding import rng_state, seed_everything, set_rng_state


class GanTrainer:
    """Models, optimizers, randomness and bookkeeping of one run; see the module docstring."""

    def __init__(
        self,
        cfg: GanConfig,
        data: ImageTensors,
        device: torch.device,
        run: RunDir,
        extractor: Any | None,
        sync_bn: bool = True,
    ) -> None:
        self.cfg, self.data, self.device, self.run = cfg, data, device, run
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
        self.distributed = is_active()
        for pair in self.pairs:  # the pairs' own modules in one process
            pair.generator = data_parallel(pair.generator, device, sync_bn=sync_bn)
            pair.discriminator = data_parallel(pair.discriminator, device, sync_bn=sync_bn)
        self.noise = rank_generator(cfg.seed)  # every random draw of training (this rank's)
        batch = cfg.batch_size // world_size()  # this rank's share (check_batch_split: even)
        self.stepper = PairStep(cfg, self.loss, self.noise, device, batch)
        self.stat_keys = stat_keys(cfg)
        self.iteration = 0
        self.best_fid: float | None = None
        self.best_iteration = 0
        self.last_eval: dict[str, Any] | None = None
        self.last_eval_iteration = -1
        self.meter = Meter(self.stat_keys)
        self.images_per_second = 0.0  # smoothed, for the progress bar only
        self.guard = make_guard()
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
                    make_grad_scaler(device), make_grad_scaler(device), imgs, labs, n,
                    **regularizers_for(cfg))
            for (g, d, ema), (imgs, labs, n) in zip(triples, subsets, strict=True)
        ]  # fmt: skip

    # -- one iteration -------------------------------------------------------------------------

    def step(self, pair: GanPair) -> dict[str, float]:
        """One iteration of one pair (:class:`augment.gan.step.PairStep`)."""
        return self.stepper(pair, self.iteration)

    def iterate(self) -> dict[str, float]:
        """One iteration of every pair; returns the statistics averaged over pairs."""
        start = time.perf_counter()
        stats = [self.step(pair) for pair in self.pairs]
        self.iteration += 1
        means = {k: float(np.mean([s[k] for s in stats])) for k in self.stat_keys}
        if isinstance(self.guard, AgreedStop):  # the ranks' means (equal shares) and Ctrl-C votes
            *sums, votes = all_sum([*means.values(), self.guard.flag()])
            means = {k: v / world_size() for k, v in zip(means, sums, strict=True)}
            self.guard.agree(votes)
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
            self.run.append_history(record)
            self.meter = Meter(self.stat_keys)
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
        grid_path = Path("samples") / f"iter_{it:06d}.png"
        ema = sampler(self.G_ema, cfg)  # as synthesize will draw it (standing statistics)
        if is_main():  # the grid is rank 0's to draw and write
            grid = sample_grid(
                ema,
                self.class_names,
                columns=cfg.grid_columns,
                seed=cfg.seed,
                device=self.device,
                title=f"{cfg.name}: iteration {it} (EMA generator)",
            )
            buffer = io.BytesIO()
            grid.save(buffer, format="PNG")
            self.run.write_file(grid_path, buffer.getvalue())
        result = None
        if cfg.fid_samples > 0 and self.real_features is not None:
            result = evaluate_generator(
                ema, self.class_names, self.real_features, self.extractor,
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
            self.run.append_history(record)
            self.run.save(self.checkpoint(), *(("last", "best") if improved else ("last",)))
        if result is not None:
            fids = ", ".join(f"{k} {v['fid']:.1f}" for k, v in result["per_class"].items())
            display.notice(f"iteration {it}: FID {fids} (mean {result['mean_fid']:.1f})"
                           + (" [best]" if improved else ""))  # fmt: skip

    def checkpoint(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            CONFIG_KEY: self.cfg.to_dict(),
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
            "regularizers": [p.regularizer_state() for p in self.pairs],
            "iteration": self.iteration,
            "noise_generator": self.noise.get_state(),  # rank 0's with several processes
            **self._rank_streams(),
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

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from checkpoint ``state``: refuse other training images first (every rank
        alike, printed once), then load every state; writes nothing."""
        if state["data_sha256"] != self.data_sha256:
            refuse(
                f"{self.run.last}: the training images differ from the ones this run "
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
        for pair, regularizers in zip(self.pairs, state.get("regularizers") or [], strict=False):
            pair.load_regularizer_state(regularizers)  # absent from checkpoints before issue 11
        self.iteration = int(state["iteration"])
        streams = state.get("noise_generators")
        if not self.distributed:
            self.noise.set_state(state["noise_generator"])
        elif streams is not None and len(streams) == world_size():
            self.noise.set_state(streams[rank()])
        else:  # another number of processes: fresh seeded streams from where the run stopped
            self.noise.set_state(rank_generator(self.cfg.seed + self.iteration).get_state())
        set_rng_state(state["rng"])
        self.meter.load_state_dict(state["meter"])
        self.best_fid, self.best_iteration = state["best_fid"], int(state["best_iteration"])
        self.last_eval = state["last_eval"]
        self.last_eval_iteration = int(state["last_eval_iteration"])

    def _rank_streams(self) -> dict[str, Any]:
        """With several processes, every rank's generator state (a collective: all ranks save)."""
        if not self.distributed:
            return {}
        return {"noise_generators": gather_objects(self.noise.get_state())}
