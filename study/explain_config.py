"""Settings of ``cli explain``: a torch-free module, so the CLI reads the defaults without
importing the explanation code."""

from __future__ import annotations

from dataclasses import dataclass

from classify.explain.methods import CAM_METHODS
from core.errors import UserError


@dataclass(frozen=True)
class ExplainOptions:
    """Settings of ``cli explain`` (its defaults)."""

    out: str | None = None  # the PNG (JSON beside it); default reports/explain-<runs>.png
    cam_method: str = "gradcam"
    cam_per_class: int = 4  # test images per class (each run explains the same ones)
    checkpoint: str = "best"  # best | last | a .pt file (a relative path: in each run folder)
    seed: int = 0
    runs_dir: str = "runs"
    device: str = "auto"
    rollout: bool = True
    # Photos instead of runs: these models with torchvision's ImageNet weights ("imagenet"), or
    # with local torchvision-layout files (one per model, in order); default out then
    # reports/explain-<models>.png.
    models: tuple[str, ...] = ("vit-b16", "resnet50")
    pretrained: str = "none"
    weights: tuple[str, ...] = ()

    @property
    def photos(self) -> bool:
        """Whether the positional arguments are photos (ImageNet weights), not runs."""
        return self.pretrained != "none" or bool(self.weights)

    def validate_photos(self, images: list[str]) -> ExplainOptions:
        if not images:
            raise UserError("name at least one image file")
        if not self.models:
            raise UserError("--models: name at least one model, e.g. vit-b16,resnet50")
        if self.pretrained != "none" and self.weights:
            raise UserError(
                f"--pretrained {self.pretrained} and --weights: each names the weights; use one"
            )
        if self.weights and len(self.weights) != len(self.models):
            raise UserError(
                f"--weights: {len(self.weights)} files for {len(self.models)} models "
                f"({','.join(self.models)}); give one --weights per --models entry, in order"
            )
        return self.validate(images)

    def validate(self, runs: list[str]) -> ExplainOptions:
        if len(runs) < 1:
            raise UserError(
                "name at least one run (e.g. `cli explain resnet50 resnet50-cbam vit-tiny`)"
            )
        if self.cam_method not in CAM_METHODS:
            raise UserError(
                f"--cam-method {self.cam_method!r}: choose one of {', '.join(CAM_METHODS)}"
            )
        if self.cam_per_class < 1:
            raise UserError(f"--cam-per-class {self.cam_per_class}: must be at least 1")
        return self
