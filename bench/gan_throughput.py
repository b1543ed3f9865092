"""GAN training throughput: our conditional DCGAN step against a textbook DCGAN step.

Runs, in one process and interleaved (so a busy machine slows both alike), one D step + one G step of
- ``ours``: :class:`augment.gan.engine.GanTrainer` (projection D, class-conditional G, hinge loss,
  EMA update), with the default DiffAugment policy and without it;
- ``plain``: the PyTorch DCGAN tutorial written out (BCE with a sigmoid D, no conditioning, no
  augmentation, no EMA), with the same widths and image size,
and prints iterations/s and the ratio ours / plain.

    .venv/bin/python bench/gan_throughput.py --sizes 32 64 --width 32 --iterations 10
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from augment.gan.config import GanConfig
from augment.gan.engine import GanTrainer
from core.data import ImageTensors
from core.rundir import RunDir


def plain_generator(nz: int, ngf: int, size: int) -> nn.Module:
    """The tutorial's generator, with one fewer up-block per halving below 64 px."""
    stages = {32: 3, 64: 4, 128: 5}[size]
    mults = [min(8, 2 ** (stages - 1 - i)) for i in range(stages)]
    layers: list[nn.Module] = [
        nn.ConvTranspose2d(nz, ngf * mults[0], 4, 1, 0, bias=False),
        nn.BatchNorm2d(ngf * mults[0]),
        nn.ReLU(True),
    ]
    for a, b in zip(mults[:-1], mults[1:], strict=True):
        layers += [nn.ConvTranspose2d(ngf * a, ngf * b, 4, 2, 1, bias=False),
                   nn.BatchNorm2d(ngf * b), nn.ReLU(True)]  # fmt: skip
    layers += [nn.ConvTranspose2d(ngf * mults[-1], 3, 4, 2, 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


def plain_discriminator(ndf: int, size: int) -> nn.Module:
    stages = {32: 3, 64: 4, 128: 5}[size]
    mults = [min(8, 2**i) for i in range(stages)]
    layers: list[nn.Module] = [nn.Conv2d(3, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
    for a, b in zip(mults[:-1], mults[1:], strict=True):
        layers += [nn.Conv2d(ndf * a, ndf * b, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * b),
                   nn.LeakyReLU(0.2, True)]  # fmt: skip
    layers += [nn.Conv2d(ndf * mults[-1], 1, 4, 1, 0, bias=False), nn.Sigmoid()]
    return nn.Sequential(*layers)


def plain_step_fn(size: int, width: int, batch: int, nz: int = 128) -> Callable[[], None]:
    """One iteration of the PyTorch DCGAN tutorial's training loop."""
    net_g, net_d = plain_generator(nz, width, size), plain_discriminator(width, size)
    opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    criterion = nn.BCELoss()
    real = torch.rand(batch, 3, size, size) * 2 - 1

    def step() -> None:
        net_d.zero_grad()
        label = torch.full((batch,), 1.0)
        err_real = criterion(net_d(real).view(-1), label)
        err_real.backward()
        fake = net_g(torch.randn(batch, nz, 1, 1))
        label.fill_(0.0)
        err_fake = criterion(net_d(fake.detach()).view(-1), label)
        err_fake.backward()
        opt_d.step()
        net_g.zero_grad()
        label.fill_(1.0)
        criterion(net_d(fake).view(-1), label).backward()
        opt_g.step()

    return step


def our_step_fn(
    size: int, width: int, batch: int, policy: str, run_dir: Path
) -> Callable[[], None]:
    cfg = GanConfig(image_size=size, ngf=width, ndf=width, batch_size=batch, diffaugment=policy,
                    fid_samples=0, device="cpu")  # fmt: skip
    n = 3 * batch
    data = ImageTensors(
        torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8),
        torch.arange(n) % 3,
        [f"{i}.png" for i in range(n)],
        ["a", "b", "c"],
    )
    trainer = GanTrainer(cfg, data, torch.device("cpu"), RunDir.at(run_dir), extractor=None)
    pair = trainer.pairs[0]
    return lambda: trainer.step(pair)


def time_steps(steps: dict[str, Callable[[], None]], iterations: int, rounds: int) -> dict:
    """Median seconds per iteration of each step, measured in interleaved rounds."""
    for step in steps.values():
        for _ in range(2):  # warm-up: allocator, oneDNN kernel selection
            step()
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(iterations):
                step()
            samples[name].append((time.perf_counter() - start) / iterations)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--width", type=int, default=32, help="ngf = ndf")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=5, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
          f"ngf = ndf = {args.width}; median of {args.rounds} rounds x {args.iterations} it")  # fmt: skip
    print(f"{'size':>4}  {'variant':<28}{'it/s':>7}{'img/s':>8}{'vs plain':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            steps = {
                "plain DCGAN (tutorial, BCE)": plain_step_fn(size, args.width, args.batch_size),
                "ours, DiffAugment c,t,c": our_step_fn(size, args.width, args.batch_size,
                                                       "color,translation,cutout", Path(tmp)),
                "ours, no DiffAugment": our_step_fn(size, args.width, args.batch_size, "",
                                                    Path(tmp)),
            }  # fmt: skip
            seconds = time_steps(steps, args.iterations, args.rounds)
            base = seconds["plain DCGAN (tutorial, BCE)"]
            for name, s in seconds.items():
                print(f"{size:>4}  {name:<28}{1 / s:>7.2f}{args.batch_size / s:>8.0f}"
                      f"{base / s:>9.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
