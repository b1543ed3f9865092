"""Training throughput of our ResNet-50 family against timm's, in one process.

    .venv/bin/python bench/train_throughput.py [--image-size 64] [--batch-size 32] [--rounds 6]
        [--channels-last] [--threads N] [--stem auto|small|imagenet] [--no-timm]
    .venv/bin/python bench/train_throughput.py --settings 64px quick [--models ...] [--timm]
        [--rounds 4]

Measures images/s of a full training step (forward, cross-entropy, backward, SGD with momentum),
fp32, CPU threads = cores (or --threads / OMP_NUM_THREADS), warm-up steps excluded. Contenders run in
interleaved rounds (the order rotates each round) and each reports its median round, so a burst of
load from other processes hits every contender rather than one. Ratios are medians of same-round
ratios; images per CPU-second of this process are shown beside wall-clock rates because they are less
disturbed by other processes. On a shared machine, --threads 1 avoids OpenMP oversubscription (with
other jobs on both cores, two threads ran 3-4x slower than one here).

timm's ResNets always use the ImageNet stem (7x7 s2 + max-pool), so ours are built with
``ModelConfig(stem="imagenet")`` by default for a like-for-like comparison at any size; pass
``--stem auto`` to time what training actually uses (the small stem at <= 64 px; no timm ratio then).

Printed ratios: ours/timm throughput for the same architecture (>= 1.0 means ours is as fast), and
the time cost of SE and CBAM over the plain ResNet-50 (plain img/s / attention img/s - 1).

``--settings`` times our models at named settings side by side in the same interleaved rounds
(``64px``: 64 px, width 1, ImageNet stem; ``quick``: the quick preset's 32 px, width 0.25, small
stem), and prints each attention model's cost over the plain ResNet-50 of its own setting, one row
per model and one column per setting. ``--models`` picks the registry names (default resnet50,
resnet50-se, resnet50-cbam; the plain one is always added); placements such as resnet50-se-pre are
accepted. ``--timm`` adds timm's resnet50, resnet50 + SE (its seresnet50) and resnet50 + CBAM at
each setting, built to the same shape (stage channels from the setting's width; the small stem
swapped in as a 3x3 stride-1 conv without max-pool), so their costs print in rows of their own.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classify.models import ModelConfig, build_model  # noqa: E402
from classify.models.profile import count_parameters  # noqa: E402
from classify.models.resnet import make_divisible, resolve_stem  # noqa: E402
from classify.names import MODEL_NAMES, STEMS  # noqa: E402
from core.device import configure_cpu_threads  # noqa: E402
from core.progress import console, make_progress  # noqa: E402

# (label, our registry name or None, timm model name or None, timm kwargs)
CONTENDERS = (
    ("ours resnet50", "resnet50", None, {}),
    ("ours resnet50-se", "resnet50-se", None, {}),
    ("ours resnet50-cbam", "resnet50-cbam", None, {}),
    ("timm resnet50", None, "resnet50", {}),
    ("timm seresnet50", None, "seresnet50", {}),
    # timm has no CBAM ResNet-50 entry; its ResNet with attn_layer="cbam" is the same layout except
    # that its channel MLP has no biases (28.07M instead of 28.09M parameters at ImageNet size).
    ("timm resnet50+cbam", None, "resnet50", {"block_args": {"attn_layer": "cbam"}}),
)
SAME_ARCH = (
    ("ours resnet50", "timm resnet50"),
    ("ours resnet50-se", "timm seresnet50"),
    ("ours resnet50-cbam", "timm resnet50+cbam"),
)
ATTN_COST = (
    ("ours resnet50-se", "ours resnet50", 0.15),
    ("ours resnet50-cbam", "ours resnet50", 0.15),
    ("timm seresnet50", "timm resnet50", None),
    ("timm resnet50+cbam", "timm resnet50", None),
)
# --settings: (image size, width, stem).
SETTINGS = {
    "64px": {"image_size": 64, "width": 1.0, "stem": "imagenet"},
    "quick": {"image_size": 32, "width": 0.25, "stem": "small"},  # classify/training/presets.py
}
# --settings --timm: (row name, timm block_args); the first is the plain one the others compare to.
TIMM_AT_SETTINGS = (
    ("timm-resnet50", {}),
    ("timm-resnet50-se", {"attn_layer": "se"}),
    ("timm-resnet50-cbam", {"attn_layer": "cbam"}),
)


@dataclass
class Contender:
    label: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    rates: list[float] = field(default_factory=list)
    cpu_rates: list[float] = field(default_factory=list)
    batch: tuple[torch.Tensor, torch.Tensor] | None = None  # its own input (--settings)


def build_contender(
    label: str,
    ours: str | None,
    timm_name: str | None,
    timm_kwargs: dict[str, Any],
    args: argparse.Namespace,
) -> Contender:
    if ours is not None:
        cfg = ModelConfig(
            name=ours,
            num_classes=args.num_classes,
            image_size=args.image_size,
            width=args.width,
            stem=args.stem,
        )
        model = build_model(cfg)
    else:
        import timm

        model = timm.create_model(
            timm_name, pretrained=False, num_classes=args.num_classes, **timm_kwargs
        )
    model.train()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    return Contender(label, model, optimizer)


def make_batch(args: argparse.Namespace, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(args.batch_size, 3, image_size, image_size) * 2 - 1
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.randint(0, args.num_classes, (args.batch_size,))


def setting_contenders(args: argparse.Namespace) -> list[Contender]:
    """Our models (and with ``--timm`` timm's) at each of ``--settings``, each with an input of
    its setting's size."""
    names = ["resnet50"] + [n for n in args.models if n != "resnet50"]
    contenders = []
    for setting in args.settings:
        sized = argparse.Namespace(**{**vars(args), **SETTINGS[setting]})
        batch = make_batch(args, sized.image_size)
        here = [build_contender(f"{setting} {name}", name, None, {}, sized) for name in names]
        for name, block_args in TIMM_AT_SETTINGS if args.timm else ():
            here.append(timm_at_setting(f"{setting} {name}", block_args, sized))
        for contender in here:
            contender.batch = batch
        contenders += here
    return contenders


def timm_at_setting(label: str, block_args: dict[str, Any], args: argparse.Namespace) -> Contender:
    """timm's ResNet-50 (+ ``block_args``' attention) shaped as ours at ``args``' width and stem:
    stage channels ``base x 1, 2, 4, 8`` with our rounding, and our stem. timm's plain stem is
    always 64 channels wide, so the model is built with its "deep" stem (``stem_width * 2`` = base
    channels into layer1) and that stem's convolutions replaced by ours: a 7x7 stride-2 conv
    (ImageNet, timm's own at width 1), or a 3x3 stride-1 conv without the max-pool (small)."""
    import timm

    base = make_divisible(64 * args.width)
    channels = tuple(base * 2**i for i in range(4))
    model = timm.create_model("resnet50", pretrained=False, num_classes=args.num_classes,
                              stem_type="deep", stem_width=base // 2, channels=channels,
                              block_args=block_args)  # fmt: skip
    if resolve_stem(args.stem, args.image_size) == "small":
        model.conv1 = nn.Conv2d(3, base, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    else:
        model.conv1 = nn.Conv2d(3, base, 7, stride=2, padding=3, bias=False)
    model.train()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    return Contender(label, model, optimizer)


def train_steps(
    contender: Contender, x: torch.Tensor, y: torch.Tensor, steps: int
) -> tuple[float, float]:
    """Run ``steps`` training steps; return images per wall-clock second and per CPU second of
    this process (the latter is less disturbed by other processes competing for the cores)."""
    if contender.batch is not None:
        x, y = contender.batch
    loss_fn = nn.functional.cross_entropy
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        loss = loss_fn(contender.model(x), y)
        contender.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        contender.optimizer.step()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return steps * x.shape[0] / wall, steps * x.shape[0] / cpu


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-classes", type=int, default=3)
    parser.add_argument("--width", type=float, default=1.0, help="ours only; timm is width 1")
    parser.add_argument("--stem", default="imagenet", choices=STEMS)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per contender")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--channels-last", action="store_true", help="all contenders")
    parser.add_argument("--no-timm", action="store_true")
    parser.add_argument(
        "--only", nargs="+", metavar="LABEL", help='e.g. --only "ours resnet50" "timm resnet50"'
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="intra-op threads; 0: every core (the default)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--settings",
        nargs="+",
        choices=list(SETTINGS),
        help="ours only, these settings side by side",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=["resnet50-se", "resnet50-cbam"],
        choices=list(MODEL_NAMES),
        help="with --settings: registry names timed beside resnet50",
    )
    parser.add_argument(
        "--timm",
        action="store_true",
        help="with --settings: timm's ResNet-50, + SE and + CBAM at each setting beside ours",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    threads = configure_cpu_threads() if args.threads <= 0 else torch.get_num_threads()
    torch.manual_seed(args.seed)
    if args.settings:
        contenders = setting_contenders(args)
        shape = ", ".join(
            f"{k}: {v['image_size']} px width {v['width']:g} stem {v['stem']}"
            for k, v in SETTINGS.items()
            if k in args.settings
        )
    else:
        # timm only matches our architecture with the ImageNet stem at width 1.
        with_timm = not args.no_timm and args.width == 1.0 and args.stem == "imagenet"
        chosen = [c for c in CONTENDERS if c[1] is not None or with_timm]
        if args.only:
            chosen = [c for c in chosen if c[0] in args.only]
        contenders = [build_contender(*c, args) for c in chosen]
        shape = f"{args.image_size} px, stem {args.stem}, width {args.width:g}"
    x, y = make_batch(args, args.image_size)
    console.print(
        f"torch {torch.__version__}, {threads} threads, batch {args.batch_size}, {shape}, "
        f"{'channels_last' if args.channels_last else 'contiguous'}, fp32"
    )

    total = len(contenders) * (args.warmup + args.rounds * args.steps)
    with make_progress() as progress:
        task = progress.add_task("bench", total=total, info="warm-up")
        for contender in contenders:
            train_steps(contender, x, y, args.warmup)
            progress.advance(task, args.warmup)
        for round_index in range(args.rounds):
            shift = round_index % len(contenders)
            for contender in contenders[shift:] + contenders[:shift]:
                progress.update(task, info=f"round {round_index + 1}: {contender.label}")
                wall_rate, cpu_rate = train_steps(contender, x, y, args.steps)
                contender.rates.append(wall_rate)
                contender.cpu_rates.append(cpu_rate)
                progress.advance(task, args.steps)

    report(contenders, ratios=not args.settings)
    if args.settings:
        report_settings(contenders, args.settings)


def report_settings(contenders: list[Contender], settings: list[str]) -> None:
    """Each attention model's time cost over its setting's plain ResNet-50 (timm's over timm's),
    settings side by side (median over rounds of same-round ratios, by CPU time and by wall
    clock)."""
    from rich.table import Table

    table = Table(title="Time cost over plain ResNet-50 (CPU time / wall clock)")
    table.add_column("model")
    for setting in settings:
        table.add_column(setting, justify="right")
    by_label = {c.label: c for c in contenders}
    names = dict.fromkeys(c.label.split(" ", 1)[1] for c in contenders)
    plains = ("resnet50", TIMM_AT_SETTINGS[0][0])
    for name in (n for n in names if n not in plains):
        plain_name = plains[1] if name.startswith("timm-") else plains[0]
        cells = []
        for setting in settings:
            plain, model = by_label[f"{setting} {plain_name}"], by_label[f"{setting} {name}"]
            cpu = paired_ratio(plain.cpu_rates, model.cpu_rates) - 1
            wall = paired_ratio(plain.rates, model.rates) - 1
            cells.append(f"{cpu:+.1%} / {wall:+.1%}")
        table.add_row(name, *cells)
    console.print(table)


def report(contenders: list[Contender], ratios: bool = True) -> None:
    from rich.table import Table

    table = Table(title="Training throughput (median of rounds)")
    for column in ("model", "params", "img/s", "img/CPU-s", "img/s per round"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for c in contenders:
        rounds = " ".join(f"{r:.1f}" for r in c.rates)
        table.add_row(
            c.label,
            f"{count_parameters(c.model):,}",
            f"{median(c.rates):.2f}",
            f"{median(c.cpu_rates):.2f}",
            rounds,
        )
    console.print(table)
    for title, key in (("wall clock", "rates"), ("CPU time", "cpu_rates")) if ratios else ():
        console.print(f"[bold]ratios by {title}[/bold] (median over rounds of same-round ratios)")
        print_ratios({c.label: getattr(c, key) for c in contenders})


def verdict(ok: bool) -> str:
    return "[green]ok[/green]" if ok else "[red]miss[/red]"


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median of per-round ratios a/b: a slow patch of load that hits both in one round cancels."""
    return median([x / y for x, y in zip(a, b, strict=True)])


def print_ratios(rate: dict[str, list[float]]) -> None:
    for ours, theirs in SAME_ARCH:
        if ours in rate and theirs in rate:
            ratio = paired_ratio(rate[ours], rate[theirs])
            console.print(
                f"{ours} / {theirs}: {ratio:.3f}x  (target >= 1.0: {verdict(ratio >= 1)})"
            )
    for attn, plain, target in ATTN_COST:
        if attn in rate and plain in rate:
            cost = paired_ratio(rate[plain], rate[attn]) - 1
            goal = f"  (target <= {target:.0%}: {verdict(cost <= target)})" if target else ""
            drop = 1 - 1 / (1 + cost)
            console.print(
                f"{attn} time cost over {plain}: {cost:+.1%} (throughput {-drop:+.1%}){goal}"
            )


if __name__ == "__main__":
    main()
