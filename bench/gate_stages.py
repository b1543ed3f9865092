"""Where an attention gate's training cost sits: per ResNet-50 stage, in one process.

    .venv/bin/python bench/gate_stages.py [--settings 64px quick] [--attention se cbam]
        [--batch-size 32] [--rounds 8] [--threads 1]

For each setting of ``bench/train_throughput.py`` (``64px``: 64 px, width 1, ImageNet stem;
``quick``: the quick preset's 32 px, width 0.25, small stem) the standard-placement gates of the
real model are found with forward hooks, so the shapes are the ones training sees. For each
stage's shape it times, forward + backward on random tensors:

- the gate as training runs it (``gate(x) * x + residual``, one fused call, with gradients for
  ``x``, the residual and the gate's parameters),
- what the plain ResNet-50 does at the same place (``x + residual``, the in-place add's autograd),
- the gate's small networks alone (``net``: the MLP on the pooled descriptors, the spatial gate's
  7x7 conv + BatchNorm, forward and backward on descriptors pooled beforehand), the part of the
  cost that is arithmetic on small tensors, which no fusing of activation passes removes, and
- one pass over the activation (``x * 2``: a read and a write),

interleaved over ``--rounds`` rounds (order rotating, median round). It prints the extra time per
block (gate - add), the networks' share of it, and the rest in "activation passes": (extra - net)
/ one pass. Times the stage's block count gives each stage's share of the gates' total extra per
training step; compare that total with the step time of ``bench/train_throughput.py`` to get the
cost ratio that benchmark prints.
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.table import Table  # noqa: E402
from train_throughput import SETTINGS  # noqa: E402  (bench/, the script's folder)

from classify.models import ModelConfig, build_model  # noqa: E402
from classify.models.attention import (  # noqa: E402
    ChannelGate,
    SpatialGate,
    SqueezeExcite,
    create_attention,
)
from classify.models.gating import CHANNELS, SPACE, pool  # noqa: E402
from core.device import configure_cpu_threads  # noqa: E402
from core.progress import console  # noqa: E402

# M_MMAP_THRESHOLD and M_TRIM_THRESHOLD of glibc's <malloc.h>.
M_MMAP_THRESHOLD, M_TRIM_THRESHOLD = -3, -1


def stage_shapes(setting: str, attention: str, batch: int) -> list[tuple[tuple[int, ...], int]]:
    """(gate input shape, blocks with that shape) per stage, in order, from the real model."""
    cfg = ModelConfig(name=f"resnet50-{attention}", num_classes=3, **SETTINGS[setting])
    model = build_model(cfg).eval()
    shapes: list[tuple[int, ...]] = []

    def hook(_m: nn.Module, args: tuple[Tensor, ...], _out: Tensor) -> None:
        shapes.append(tuple(args[0].shape))

    for module in model.modules():
        if hasattr(module, "attn") and not isinstance(module.attn, nn.Identity):
            module.attn.register_forward_hook(hook)
    size = SETTINGS[setting]["image_size"]
    with torch.no_grad():
        model(torch.zeros(batch, 3, size, size))
    return list(Counter(shapes).items())  # first-seen order: stage by stage


def gate_networks(block: nn.Module, x: Tensor) -> list[tuple[nn.Module, list[Tensor]]]:
    """Each small gate network of ``block`` with the pooled descriptors it reads (the channel
    gate's from ``x``, the spatial gate's from ``x`` too: the same shapes as in training)."""
    found = []
    for module in block.modules():
        if isinstance(module, SqueezeExcite):
            found.append((module, [pool(x, "avg", SPACE)]))
        elif isinstance(module, ChannelGate):
            found.append((module, [pool(x, p, SPACE) for p in module.pool_types]))
        elif isinstance(module, SpatialGate):
            found.append((module, [pool(x, p, CHANNELS) for p in module.POOLS]))
    return found


def warm_heap() -> bool:
    """Keep freed memory in the process (glibc ``mallopt``: mmap threshold at its 32 MiB maximum,
    trim threshold 1 GiB), so that a gate timed alone reuses its temporaries' pages as it does
    inside a whole training step. Alone, with glibc's dynamic defaults, each step's temporaries
    were fresh pages: a CBAM block on 256 x 16 x 16 timed 31 ms against 15 ms, while whole-model
    throughput (bench/train_throughput.py) did not change with the same settings (33.9 vs 33.5
    img/s plain, 29.6 vs 29.6 CBAM at 64 px): there the heap is already large and warm."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) and mallopt(M_TRIM_THRESHOLD, 1 << 30))


def timed(fn: Callable[[], None], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def time_stage(attention: str, shape: tuple[int, ...], rounds: int, steps: int) -> dict[str, float]:
    """Median seconds per call of the gate, the plain addition, one activation pass and the gate
    networks alone (module docstring), over interleaved rounds."""
    gate = create_attention(attention, shape[1]).train()
    x = torch.randn(shape, requires_grad=True)
    res = torch.randn(shape, requires_grad=True)
    grad = torch.randn(shape)
    networks = gate_networks(gate, x.detach())

    def network() -> None:
        for module, pooled in networks:
            scale = module.gate([p.detach().requires_grad_() for p in pooled])
            scale.backward(torch.ones_like(scale))

    def one_pass() -> None:
        with torch.no_grad():
            x.mul(2)

    contenders: dict[str, Callable[[], None]] = {
        "gate": lambda: gate(x, res).backward(grad),
        "add": lambda: (x + res).backward(grad),
        "pass": one_pass,
        "net": network,
    }
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for fn in contenders.values():
        timed(fn, 2)  # warm-up
    keys = list(contenders)
    for r in range(rounds):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            times[key].append(timed(contenders[key], steps))
        x.grad = res.grad = None
        gate.zero_grad(set_to_none=True)
    return {k: statistics.median(v) for k, v in times.items()}


def stage_table(title: str, rows: list[tuple[tuple[int, ...], int, dict[str, float]]]) -> Table:
    """One row per stage: times in ms, the rest in passes, the stage's share of the total."""
    extras = [med["gate"] - med["add"] for _, _, med in rows]
    total = sum(extra * blocks for extra, (_, blocks, _) in zip(extras, rows, strict=True))
    table = Table(title=title)
    for column in ("C x H x W", "blocks", "gate", "add", "extra", "net", "passes", "stage (share)"):
        table.add_column(column, justify="right")
    for extra, (shape, blocks, med) in zip(extras, rows, strict=True):
        table.add_row(
            "x".join(str(d) for d in shape[1:]),
            str(blocks),
            f"{med['gate'] * 1e3:.2f}",
            f"{med['add'] * 1e3:.2f}",
            f"{extra * 1e3:.2f}",
            f"{med['net'] * 1e3:.2f}",
            f"{(extra - med['net']) / med['pass']:.1f}",
            f"{extra * blocks * 1e3:.1f} ({extra * blocks / total:.0%})",
        )
    table.caption = f"total extra per training step: {total * 1e3:.1f} ms"
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="+", default=["64px", "quick"], choices=SETTINGS)
    parser.add_argument("--attention", nargs="+", default=["se", "cbam"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="0: every core")
    parser.add_argument(
        "--glibc-malloc",
        action="store_true",
        help="keep glibc's default malloc thresholds (see warm_heap)",
    )
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    else:
        configure_cpu_threads()
    if not args.glibc_malloc:
        warm_heap()
    torch.manual_seed(0)
    for setting in args.settings:
        for attention in args.attention:
            rows = [
                (shape, blocks, time_stage(attention, shape, args.rounds, args.steps))
                for shape, blocks in stage_shapes(setting, attention, args.batch_size)
            ]
            title = (
                f"{setting} resnet50-{attention}: ms per block, batch {args.batch_size}, "
                f"median of {args.rounds} rounds"
            )
            console.print(stage_table(title, rows))


if __name__ == "__main__":
    main()
