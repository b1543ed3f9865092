"""Classical augmentation of a classifier's training batches: crops, flips, policies and mixes.

The hand-designed augmentation selected by ``--augment`` / ``TrainConfig.augment``: random crops and
flips, automatic policies (TrivialAugment, RandAugment, AutoAugment) and batch mixes (mixup,
CutMix). Not to be confused with the GAN that
makes synthetic images (the ``augment/`` package) or with DiffAugment, which transforms the GAN's
real and fake batches alike (``augment/gan/diffaugment.py``).

- :mod:`~classify.classical.spec` (torch-free, for the CLI): :func:`parse_augment` turns an
  ``--augment`` value into an :class:`AugmentSpec`; the names it accepts are ``CROPS``,
  ``POLICIES`` and ``MIXES`` of :mod:`classify.names`.
- :mod:`~classify.classical.apply`: :func:`augment_batch` (policy, crop, flip of a uint8 batch) and
  :func:`train_inputs` (that, scaled to [-1, 1], then mixed: what the trainer calls).
- :mod:`~classify.classical.crops`: ``pad-crop``, ``resized-crop``, ``none`` and the flip.
- :mod:`~classify.classical.policies`: the automatic policies, per sample (torchvision).
- :mod:`~classify.classical.mixing`: mixup and CutMix with soft targets (torchvision), and
  :func:`target_labels` for accuracy on mixed targets.

Every random draw comes from the trainer's per-epoch generator, so runs are reproducible from their
seed and resume exactly. This file imports nothing: the CLI imports :mod:`.spec` to check
``--augment`` and build ``--help``, which must not import torch.
"""
