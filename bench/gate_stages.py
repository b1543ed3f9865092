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
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.table import Table  # noqa: E402

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

SETTINGS = {
    "64px": {"image_size": 64, "width": 1.0, "stem": "imagenet"},
    "quick": {"image_size": 32, "width": 0.25, "stem": "small"},  # classify/training/presets.py
}


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
    counted: dict[tuple[int, ...], int] = {}
    for shape in shapes:
        counted[shape] = counted.get(shape, 0) + 1
    return list(counted.items())


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
    return bool(mallopt(-3, 32 * 1024 * 1024) and mallopt(-1, 1 << 30))  # M_MMAP_, M_TRIM_THRESHOLD


def timed(fn: Callable[[], None], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


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
            rows = []
            for shape, blocks in stage_shapes(setting, attention, args.batch_size):
                gate = create_attention(attention, shape[1]).train()
                x = torch.randn(shape, requires_grad=True)
                res = torch.randn(shape, requires_grad=True)
                grad = torch.randn(shape)

                def gated(
                    gate: nn.Module = gate, x: Tensor = x, res: Tensor = res, grad: Tensor = grad
                ) -> None:
                    gate(x, res).backward(grad)

                def added(x: Tensor = x, res: Tensor = res, grad: Tensor = grad) -> None:
                    (x + res).backward(grad)

                def one_pass(x: Tensor = x) -> None:
                    with torch.no_grad():
                        x.mul(2)

                networks = gate_networks(gate, x.detach())

                def network(networks: list[tuple[nn.Module, list[Tensor]]] = networks) -> None:
                    for module, pooled in networks:
                        leaves = [p.detach().requires_grad_() for p in pooled]
                        scale = module.gate(leaves)
                        scale.backward(torch.ones_like(scale))

                contenders = {"gate": gated, "add": added, "pass": one_pass, "net": network}
                times: dict[str, list[float]] = {k: [] for k in contenders}
                for fn in contenders.values():
                    timed(fn, 2)  # warm-up
                for r in range(args.rounds):
                    order = list(contenders)[r % 4 :] + list(contenders)[: r % 4]
                    for key in order:
                        times[key].append(timed(contenders[key], args.steps))
                    x.grad = res.grad = None
                    gate.zero_grad(set_to_none=True)
                med = {k: statistics.median(v) for k, v in times.items()}
                extra = med["gate"] - med["add"]
                rows.append((shape, blocks, med, extra))
            total = sum(extra * blocks for _, blocks, _, extra in rows)
            table = Table(
                title=f"{setting} resnet50-{attention}: ms per block, batch {args.batch_size}, "
                f"median of {args.rounds} rounds"
            )
            columns = (
                "C x H x W",
                "blocks",
                "gate",
                "add",
                "extra",
                "net",
                "passes",
                "stage (share)",
            )
            for column in columns:
                table.add_column(column, justify="right")
            for shape, blocks, med, extra in rows:
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
            console.print(table)
            console.print(f"total extra per training step: {total * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
