"""Named training presets: ``quick`` is the CPU demo (all three ResNets on the footwear set in
minutes on 2 cores), ``full`` the full-width ResNet-50 a user dataset deserves on a GPU.

A preset overrides :class:`~classify.training.config.TrainConfig` defaults; explicit options override a
preset (``CLASSIFIER_PRESETS.apply(TrainConfig(), name, explicit)``, see :mod:`core.presets`). This
module imports no torch (the CLI reads it while building ``--help``).
"""

from __future__ import annotations

from core.presets import Presets

CLASSIFIER_PRESETS = Presets(
    {
        # 32 px (the small-image stem keeps a 4x4 layer4 map), a quarter of the channels, 12 epochs
        # of AdamW (SGD at lr 0.05-0.1 reached 71-75% validation accuracy here, AdamW ~90%+).
        "quick": {
            "image_size": 32,
            "width": 0.25,
            "epochs": 12,
            "batch_size": 32,
            "optimizer": "adamw",
            "lr": 2e-3,
            "weight_decay": 0.05,
        },
        # Full-width ResNet-50 at 64 px: the default architecture for user datasets.
        "full": {"image_size": 64, "width": 1.0, "epochs": 40, "batch_size": 64},
    }
)
