"""Named training presets: ``quick`` is the CPU demo (all three ResNets on the footwear set in
minutes on 2 cores), ``full`` the full-width ResNet-50 a user dataset deserves on a GPU, ``photo``
the ImageNet-sized ResNet-50 for RGB photos on one GPU, meant with ``--pretrained imagenet``
(fine-tuning: a small AdamW learning rate, few epochs; docs/photo-preset-times.md estimates its
run times).

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
        # RGB photos on one GPU: the ImageNet geometry (224 px; the 7x7 stride-2 stem and max-pool,
        # which "auto" picks above 64 px), full width, so ImageNet weights fit. Fine-tuning
        # settings (AdamW 3e-4, weight decay 0.05, one warm-up epoch, 15 epochs, random resized
        # crops, label smoothing 0.1): a from-scratch run would want SGD or AdamW 2e-3 and many
        # more epochs. 24.3 GFLOP per training image (torch.utils.flop_counter), so an epoch of a
        # few thousand images is seconds on an H100 and the better part of an hour on 2 CPU cores.
        "photo": {
            "image_size": 224,
            "width": 1.0,
            "epochs": 15,
            "batch_size": 32,
            "optimizer": "adamw",
            "lr": 3e-4,
            "weight_decay": 0.05,
            "warmup_epochs": 1.0,
            "label_smoothing": 0.1,
            "augment": "resized-crop",
        },
    }
)
