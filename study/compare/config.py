"""Settings of ``cli compare``: a torch-free module, so the CLI can read the defaults without
importing the heavy comparison code."""

from __future__ import annotations

from dataclasses import dataclass

# What a one-pair verdict advises: more seeds, compared as lists (a study names its own command).
PAIR_ADVICE = (
    "train three or more seeds of each and compare them as lists "
    "(cli compare a_s0,a_s1,a_s2 b_s0,b_s1,b_s2)"
)


@dataclass
class CompareConfig:
    """Settings of ``cli compare`` (defaults = the CLI's defaults)."""

    a: tuple[str, ...] = ()  # side A: run names or folders (several = seeds)
    b: tuple[str, ...] = ()  # side B
    out: str | None = None  # None: reports/<A>-vs-<B>
    cam_method: str = "gradcam"
    cam_per_class: int = 4  # Grad-CAM images per class; 0 skips the Grad-CAM section
    checkpoint: str = "best"  # best | last | a .pt file (a relative path: in each run folder)
    runs_dir: str = "runs"
    seed: int = 0
    resamples: int = 10_000
    device: str = "auto"
    synthetic_per_class: int = 8  # images per class in the synthetic sample grid
    # How a one-pair verdict tells the reader to get a verdict about the method (a study: its
    # --seeds; cli compare: seed lists).
    more_seeds: str = PAIR_ADVICE
    made_by: str = "cli compare"  # the command the report names as its maker
