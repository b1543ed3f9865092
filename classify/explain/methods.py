"""Names of the class-activation-map methods and faithfulness metrics (a light registry: the CLI
reads its choices from here without importing pytorch_grad_cam)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CamMethod:
    class_name: str  # attribute of the pytorch_grad_cam package
    paper: str
    slow_on_cpu: bool = False


CAM_METHODS: dict[str, CamMethod] = {
    "gradcam": CamMethod("GradCAM", "Selvaraju et al. 2017, Grad-CAM"),
    "gradcam++": CamMethod("GradCAMPlusPlus", "Chattopadhay et al. 2018, Grad-CAM++"),
    "hirescam": CamMethod("HiResCAM", "Draelos & Carin 2020, HiResCAM"),
    # One forward pass per channel of the target layer (2048 for ResNet-50) per image.
    "scorecam": CamMethod("ScoreCAM", "Wang et al. 2020, Score-CAM", slow_on_cpu=True),
    "eigencam": CamMethod("EigenCAM", "Muhammad & Yeasin 2020, Eigen-CAM"),
}


@dataclass(frozen=True)
class FaithfulnessMetric:
    label: str  # name written to metrics.json
    description: str


# Both metrics are "higher is better" and are computed on softmax probabilities of the CAM's target
# class, so values are comparable across runs and methods.
FAITHFULNESS_METRICS: dict[str, FaithfulnessMetric] = {
    "road": FaithfulnessMetric(
        "ROADCombined(20,40,60,80)",
        "ROAD (Rong et al. 2022): (confidence change when the least relevant pixels are imputed "
        "away - change when the most relevant are) / 2, averaged over 20/40/60/80% removal; "
        "in [-1, 1], higher = more faithful, 0 = no better than chance",
    ),
    "confidence": FaithfulnessMetric(
        "CamMultImageConfidenceChange",
        "confidence change when the image is multiplied by the CAM (only attended pixels kept); "
        "higher (closer to 0 or positive) = more faithful",
    ),
}

CAM_TARGETS = ("predicted", "true")
