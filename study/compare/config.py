"""Settings of ``cli compare``: a torch-free module, so the CLI can read the defaults without
importing the heavy comparison code."""

from __future__ import annotations

from dataclasses import dataclass


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
