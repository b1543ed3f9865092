"""Scoring options: the defaults here are the ``cli fid`` defaults (no heavy imports in this file)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from core.errors import UserError

INCEPTION = "inception-v3-compat"  # torch-fidelity's registry name for the FID InceptionV3


@dataclass(frozen=True)
class FidConfig:
    batch_size: int = 64
    kid_subset_size: int | None = None  # None: min(1000, n_a, n_b)
    kid_subsets: int = 100
    seed: int = 0  # KID subset sampling
    device: str = "auto"
    feature_extractor: str = INCEPTION
    cache: bool = True

    def __post_init__(self) -> None:
        """Refuse bad numbers before minutes of feature extraction, not after."""
        if self.batch_size < 1:
            raise UserError(f"--batch-size {self.batch_size}: must be at least 1")
        if self.kid_subsets < 1:
            raise UserError(f"--kid-subsets {self.kid_subsets}: must be at least 1")
        if self.kid_subset_size is not None and self.kid_subset_size < 2:
            raise UserError(f"--kid-subset-size {self.kid_subset_size}: must be at least 2")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
