"""Cost of the classical ``--augment`` values per batch, against today's pad-crop + flip and
against a whole training step at a preset (default: quick), side by side in one process.

    .venv/bin/python bench/augment_throughput.py [--preset quick] [--model resnet50]
        [--rounds 5] [--batches 10] [--steps 2] [--threads N] [--device cpu|cuda]

Each value is timed exactly as the trainer runs it (``classify.classical.apply.train_inputs``:
policy per sample, crop, flip, scaling to [-1, 1], mix), on a batch of random uint8 images of the
preset's size and batch size; the training step (forward, cross-entropy, backward, the preset's
optimizer) is timed on pad-crop + flip inputs. Values and the step run in interleaved rounds (the
order rotates each round), and every ratio is the median over rounds of same-round ratios, so a
burst of load from other processes hits all of them rather than one. On a shared machine read the
ratios, not the milliseconds.

Printed per value: ms per batch, the ratio to pad-crop + flip, and the epoch overhead: the extra
time an epoch takes over pad-crop + flip, (t_value - t_pad_crop) / (t_step + t_pad_crop), with
validation and checkpoints left out (they only make the share smaller). Target: <= 15%.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classify.classical.apply import train_inputs  # noqa: E402
from classify.models import build_model  # noqa: E402
from classify.names import MIXES, POLICIES  # noqa: E402
from classify.training.config import TrainConfig  # noqa: E402
from classify.training.optim import build_optimizer  # noqa: E402
from classify.training.presets import CLASSIFIER_PRESETS  # noqa: E402
from classify.training.run import model_config_of  # noqa: E402
from core.device import configure_cpu_threads  # noqa: E402
from core.progress import console  # noqa: E402

BASELINE = "pad-crop"
VALUES = (BASELINE, *POLICIES, *MIXES, "trivialaugment,mixup")
STEP = "training step"
TARGET = 0.15  # issue 10: an epoch may cost at most ~15% more than with pad-crop + flip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="quick", choices=CLASSIFIER_PRESETS.names)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--num-classes", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=10, help="augmented batches per round")
    parser.add_argument("--steps", type=int, default=2, help="training steps per round")
    parser.add_argument("--threads", type=int, default=0, help="0: every core (as training)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def timed(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Seconds per call of ``fn``, over ``repeats`` calls."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeats


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    threads = configure_cpu_threads() if args.threads <= 0 else torch.get_num_threads()
    device = torch.device(args.device)
    cfg = CLASSIFIER_PRESETS.apply(TrainConfig(model=args.model), args.preset)
    torch.manual_seed(args.seed)
    model = build_model(model_config_of(cfg, args.num_classes)).to(device).train()
    optimizer = build_optimizer(model, cfg)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    shape = (cfg.batch_size, 3, cfg.image_size, cfg.image_size)
    images = torch.randint(0, 256, shape, dtype=torch.uint8).to(device)
    labels = torch.randint(0, args.num_classes, (cfg.batch_size,)).to(device)
    generator = torch.Generator().manual_seed(args.seed)

    def augment(value: str) -> tuple[torch.Tensor, torch.Tensor]:
        return train_inputs(
            images,
            labels,
            value,
            hflip=cfg.hflip,
            num_classes=args.num_classes,
            generator=generator,
        )

    def step() -> None:
        x, y = augment(BASELINE)
        loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    jobs: dict[str, tuple[Callable[[], object], int]] = {
        value: ((lambda v=value: augment(v)), args.batches) for value in VALUES
    }
    jobs[STEP] = (step, args.steps)
    console.print(
        f"torch {torch.__version__}, {threads} threads, {device}, preset {args.preset} "
        f"({args.model}, {cfg.image_size} px, width {cfg.width:g}, batch {cfg.batch_size}, "
        f"{cfg.optimizer})"
    )
    for fn, _ in jobs.values():  # warm-up
        fn()
    seconds: dict[str, list[float]] = {name: [] for name in jobs}
    names = list(jobs)
    for round_index in range(args.rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            fn, repeats = jobs[name]
            seconds[name].append(timed(fn, repeats, device))
        console.print(f"round {round_index + 1}/{args.rounds} done")
    report(seconds)


def report(seconds: dict[str, list[float]]) -> None:
    from rich.table import Table

    base, step = seconds[BASELINE], seconds[STEP]
    table = Table(title="Augmentation cost per batch (median over rounds of same-round ratios)")
    for column in ("--augment", "ms / batch", "x pad-crop", "epoch overhead", f"<= {TARGET:.0%}"):
        table.add_column(column, justify="left" if column == "--augment" else "right")
    for value in VALUES:
        mine = seconds[value]
        ratio = statistics.median(m / b for m, b in zip(mine, base, strict=True))
        overhead = statistics.median(
            (m - b) / (s + b) for m, b, s in zip(mine, base, step, strict=True)
        )
        ok = "[green]ok[/green]" if overhead <= TARGET else "[red]miss[/red]"
        table.add_row(
            value,
            f"{statistics.median(mine) * 1e3:.2f}",
            f"{ratio:.2f}",
            f"{overhead:+.1%}",
            ok if value != BASELINE else "",
        )
    console.print(table)
    share = statistics.median(b / (s + b) for b, s in zip(base, step, strict=True))
    console.print(
        f"training step (incl. pad-crop + flip): {statistics.median(step) * 1e3:.1f} ms; "
        f"pad-crop + flip is {share:.1%} of it"
    )


if __name__ == "__main__":
    main()
