"""Classifier training throughput on one process vs two (torch.distributed, gloo, CPU), and what the
communication costs per step. Run by hand: ``.venv/bin/python bench/distributed_throughput.py``.

Each step is the trainer's (:mod:`classify.training.engine`): the global batch is augmented as
one process would augment it (pad-crop + flip), each rank trains on its contiguous half, losses
weighted by share, DDP averages the gradients, one all-reduce sums the step's statistics.
Settings, timed in interleaved rounds (median step time over the rounds):

- ``1 process``: the one-process run, with all cores (``--threads``) and with one thread;
- ``2 x DDP, local BN``: ``torchrun --standalone --nproc-per-node 2``, one thread per rank
  (torchrun's default), what ``cli train --nproc 2`` runs on the CPU (SyncBatchNorm needs CUDA);
- ``2 x no communication``: each rank's compute alone (gradients not reduced, statistics local):
  the lower bound two processes could reach. Communication per step = a setting minus this one.

On a CPU the two processes compete for the same cores and memory bandwidth, so expect little or no
speed-up; the point of the numbers is the overhead of the communication, which on GPUs with NCCL
is overlapped with the backward pass (see the README's section on several processes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _worker(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    import torch

    from classify.classical.apply import train_inputs
    from classify.models import ModelConfig, build_model
    from core.ddp import data_parallel
    from core.distributed import is_main, rank, start, world_size
    from core.ranks import all_sum, batch_part

    torch.set_num_threads(args.threads)
    start(torch.device("cpu"), timeout=120)
    variants = ["local", "none"] if world_size() > 1 else ["single"]
    images = torch.randint(0, 256, (args.batch, 3, args.image_size, args.image_size),
                           generator=torch.Generator().manual_seed(0)).to(torch.uint8)  # fmt: skip
    labels = torch.arange(args.batch) % 3
    out: dict[str, list[float]] = {}
    for variant in variants:
        torch.manual_seed(0)
        config = ModelConfig(args.model, num_classes=3, image_size=args.image_size,
                             width=args.width)  # fmt: skip
        model = build_model(config)
        net = data_parallel(model, torch.device("cpu"), sync_bn=False)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        generator = torch.Generator().manual_seed(1)
        times = []
        for step in range(args.warmup + args.steps):
            begin = time.perf_counter()
            x, y = train_inputs(images, labels, "pad-crop", hflip=True, num_classes=3,
                                generator=generator)  # fmt: skip
            part = batch_part(args.batch)
            x, y = x[part], y[part]
            quiet = net.no_sync() if variant == "none" else nullcontext()
            with quiet:
                loss = torch.nn.functional.cross_entropy(net(x), y)
                optimizer.zero_grad(set_to_none=True)
                (loss * (len(x) * world_size() / args.batch)).backward()
            optimizer.step()
            if variant == "local":
                all_sum([loss.item() * len(x), 0.0, 0.0])
            else:
                loss.item()
            if step >= args.warmup:
                times.append(time.perf_counter() - begin)
        out[variant] = times
    latency = []
    for _ in range(50 if world_size() > 1 else 0):  # one small all-reduce
        begin = time.perf_counter()
        all_sum([1.0, 2.0, 3.0])
        latency.append(time.perf_counter() - begin)
    if is_main():
        extra = {"latency": statistics.median(latency) if latency else 0.0}
        Path(args.out).write_text(json.dumps({"rank": rank(), **out, **extra}))


def _launch(args: argparse.Namespace, nproc: int, threads: int, out: Path) -> dict:
    common = ["--worker", "--out", str(out), "--threads", str(threads), "--steps", str(args.steps),
              "--warmup", str(args.warmup), "--batch", str(args.batch), "--model", args.model,
              "--image-size", str(args.image_size), "--width", str(args.width)]  # fmt: skip
    script = str(Path(__file__).resolve())
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if nproc == 1:
        cmd = [sys.executable, script, *common]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", script, *common]  # fmt: skip
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, capture_output=True)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32, help="global batch")
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--width", type=float, default=0.25)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    rows: dict[str, list[float]] = {}
    latency: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for nproc, threads in ((1, args.threads), (1, 1), (2, 1)):
                out = Path(tmp) / f"r{round_}-{nproc}-{threads}.json"
                result = _launch(args, nproc, threads, out)
                if nproc > 1:
                    latency.append(result["latency"])
                for variant, times in result.items():
                    if isinstance(times, list):
                        key = f"{variant}{threads}" if variant == "single" else variant
                        rows.setdefault(key, []).append(statistics.median(times))
    single_key = f"single{args.threads}"
    names = {single_key: f"1 process, {args.threads} threads", "single1": "1 process, 1 thread",
             "local": "2 x DDP, local BN",
             "none": "2 x no communication"}  # fmt: skip
    base = statistics.median(rows["none"])
    single = statistics.median(rows[single_key])
    print(f"{args.model} {args.image_size} px width {args.width}, global batch {args.batch}, "
          f"{args.rounds} rounds x {args.steps} steps, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{'setting':28} {'ms/step':>8} {'img/s':>7} {'vs 1 proc':>9} {'comm ms/step':>12}")
    print(f"(vs 1 proc: against 1 process with {args.threads} threads)")
    for key in names:
        ms = statistics.median(rows[key]) * 1000
        comm = f"{ms - base * 1000:12.1f}" if key == "local" else ""
        print(f"{names[key]:28} {ms:8.1f} {args.batch / ms * 1000:7.1f} "
              f"{single * 1000 / ms:8.2f}x {comm}")  # fmt: skip
    print(f"one small all-reduce (gloo, 2 ranks): {statistics.median(latency) * 1e6:.0f} us")


if __name__ == "__main__":
    main()
