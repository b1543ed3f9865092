"""Helpers of scripts/gpu-check.sh (run from the repository root with the project's Python).

``data OUT``        a synthetic RGB photo-like set: OUT/<class>/*.jpg, one folder per class (the
                    check then runs ``cli data split`` on it), coloured shapes on textured noise
``ips HISTORY``     the median images/s of a run's later half of history.jsonl records
``ddp``             under ``torch.distributed.run`` (one process): a process group (NCCL on CUDA,
                    gloo on the CPU), an all-reduce checked, then AMP training steps of a ResNet
                    through :func:`core.ddp.data_parallel` (DistributedDataParallel, SyncBatchNorm
                    on CUDA), timed
``manifest SYNTH``  one line of a synthetic set's FID / KID
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

CLASSES = ("rows", "columns", "diagonals")


def write_data(out: Path, per_class: int, size: int, seed: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASSES):
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            # stripes whose direction is the class (rows, columns, diagonals), noisy colours
            yy, xx = np.mgrid[0:size, 0:size]
            phase = (yy, xx, yy + xx)[label] * (2 * np.pi / rng.uniform(12, 32))
            wave = 0.5 + 0.5 * np.sin(phase + rng.uniform(0, 2 * np.pi))
            colour = rng.integers(40, 256, 3)
            pixels = wave[..., None] * colour + rng.normal(0, 12, (size, size, 3))
            img = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
            img.save(folder / f"{name}_{index:04d}.jpg", quality=90)


def history_ips(path: Path) -> float:
    """Median images/s over the later half of the training records (the first ones include
    cuDNN's autotuning and warm-up)."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    values = [
        r["images_per_second"]
        for r in records
        if r.get("images_per_second") and r.get("kind", "train") == "train"
    ]
    if not values:
        raise SystemExit(f"{path}: no images_per_second in any record")
    return statistics.median(values[len(values) // 2 :])


def ddp_steps(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    from classify.models import ModelConfig, build_model
    from core import ddp
    from core.device import autocast, make_grad_scaler, memory_format, setup_device

    device = setup_device(args.device, cudnn_benchmark=True)
    cuda = device.type == "cuda"
    backend = "nccl" if cuda else "gloo"
    if cuda:  # one rank: "cuda" has no index yet; DDP and the NCCL binding need one
        device = torch.device("cuda", device.index if device.index is not None else 0)
        torch.cuda.set_device(device)
    dist.init_process_group(backend, device_id=device if cuda else None)
    probe = torch.full((4,), 3.0, device=device)
    dist.all_reduce(probe)
    assert probe.tolist() == [3.0] * 4, probe  # one rank: the sum is the value
    cfg = ModelConfig(name=args.model, num_classes=3, image_size=args.image_size, width=args.width)
    model = build_model(cfg).to(device, memory_format=memory_format(device))
    ddp.is_active = lambda: True  # wrap on this one-rank group too, as a multi-rank run would
    wrapped = ddp.data_parallel(model, device, sync_bn=cuda)
    assert isinstance(wrapped, torch.nn.parallel.DistributedDataParallel), type(wrapped)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    scaler = make_grad_scaler(device)
    b, s = args.batch_size, args.image_size
    x = torch.randn(b, 3, s, s, device=device).contiguous(memory_format=memory_format(device))
    y = torch.randint(0, 3, (b,), device=device)
    start = 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
        with autocast(device):
            loss = F.cross_entropy(wrapped(x), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    if cuda:
        torch.cuda.synchronize(device)
    ips = args.steps * b / (time.perf_counter() - start)
    assert torch.isfinite(loss), loss
    sync = sum(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    print(
        f"ddp backend={backend} world={dist.get_world_size()} syncbn_layers={sync} "
        f"model={args.model} {s}px batch {b}: {ips:.1f} img/s, loss {loss.item():.3f}"
    )
    print(f"IPS {ips:.1f}")
    dist.destroy_process_group()


def manifest_line(folder: Path) -> str:
    manifest = json.loads((folder / "manifest.json").read_text())
    fid = manifest.get("fid") or {}
    overall = fid.get("overall") or {}
    counts = manifest.get("counts") or {}
    return (
        f"{sum(counts.values())} images, extractor {fid.get('extractor')}, overall FID "
        f"{overall.get('fid', float('nan')):.1f}, KID {overall.get('kid_mean', float('nan')):.4f}"
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    data = sub.add_parser("data")
    data.add_argument("out", type=Path)
    data.add_argument("--per-class", type=int, default=300)
    data.add_argument("--size", type=int, default=256)
    data.add_argument("--seed", type=int, default=0)
    sub.add_parser("ips").add_argument("history", type=Path)
    sub.add_parser("manifest").add_argument("folder", type=Path)
    steps = sub.add_parser("ddp")
    for flag, kind, default in (("--device", str, "cuda"), ("--model", str, "resnet50"),
                                ("--image-size", int, 224), ("--width", float, 1.0),
                                ("--batch-size", int, 32), ("--steps", int, 40),
                                ("--warmup", int, 10)):  # fmt: skip
        steps.add_argument(flag, type=kind, default=default)
    args = parser.parse_args(argv)
    if args.what == "data":
        write_data(args.out, args.per_class, args.size, args.seed)
    elif args.what == "ips":
        print(f"{history_ips(args.history):.1f}")
    elif args.what == "manifest":
        print(manifest_line(args.folder))
    else:
        ddp_steps(args)


if __name__ == "__main__":
    main(sys.argv[1:])
