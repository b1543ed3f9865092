"""Seeds and RNG state capture, so a resumed run continues with the exact random stream."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every global RNG's state as plain data (tensors, tuples, numbers), so a checkpoint holding
    it loads with ``torch.load(weights_only=True)``."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, *rest = state["numpy"]
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
    np.random.set_state((kind, keys.astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextmanager
def seeded_global_rng(generator: torch.Generator) -> Iterator[None]:
    """Run code that draws from torch's global CPU RNG (torchvision's random ``transforms.v2``)
    reproducibly from ``generator``: one 63-bit seed is drawn from it, the global CPU generator is
    seeded with it inside :func:`torch.random.fork_rng`, and its state is restored on exit.

    So the block's draws depend only on ``generator``'s state (a resumed run replays them), and the
    global stream (weight initialisation, dropout) is as if the block had not run. Only the CPU
    generator is forked and seeded (``devices=[]``): the v2 auto-augment and mix transforms draw on
    the CPU whatever the images' device, and ``torch.manual_seed`` would reseed CUDA as well.
    """
    seed = int(torch.randint(0, 2**63 - 1, (), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield
