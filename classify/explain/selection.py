"""Which test images get explained: a seeded choice of a few test images of every class, the same
for every run that shares the dataset."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from classify.checkpoint import LoadedClassifier
from core.errors import UserError


def select_per_class(
    labels: Sequence[int], num_classes: int, per_class: int, seed: int
) -> list[list[int]]:
    """Per class, ``per_class`` seeded-random indices (all of them when the class has fewer)."""
    if per_class < 1:
        raise UserError(f"--cam-per-class {per_class}: must be at least 1")
    labels_t = torch.as_tensor(list(labels), dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in range(num_classes):
        members = torch.nonzero(labels_t == label).flatten()
        order = torch.randperm(members.numel(), generator=generator)
        chosen.append(sorted(members[order[:per_class]].tolist()))
    return chosen


def test_images_per_class(
    loaded: LoadedClassifier,
    per_class: int,
    seed: int = 0,
    workers: int = 0,
    data: str | Path | None = None,
) -> tuple[torch.Tensor, list[int], list[list[int]], list[str], list[str]]:
    """``per_class`` seeded-random test images of each class of ``loaded``'s dataset:
    (uint8 images, labels, grid rows of image indices, row labels, file names)."""
    from classify.evaluation.evaluate import check_class_names, dataset_root
    from core.data import load_samples, scan_dataset, warn_skipped

    root = dataset_root(loaded, data)
    index = scan_dataset(root)
    check_class_names(index.class_names, loaded.class_names, root)
    chosen = select_per_class(
        [s.label for s in index.test], len(index.class_names), per_class, seed
    )
    samples = [index.test[i] for row in chosen for i in row]
    tensors = load_samples(
        samples,
        index.class_names,
        loaded.train_config.image_size,
        resize_mode=loaded.train_config.resize_mode,
        workers=workers,
    )
    warn_skipped(tensors)
    labels = tensors.labels.tolist()
    rows = [[i for i, y in enumerate(labels) if y == c] for c in range(len(index.class_names))]
    names = [Path(p).name for p in tensors.paths]
    return tensors.images, labels, rows, list(index.class_names), names


def given_images(
    loaded: LoadedClassifier, images: list[Path]
) -> tuple[torch.Tensor, None, list[list[int]], None, list[str]]:
    """The same tuple as :func:`test_images_per_class` for image files given by the user: one
    row each, no true labels (each image's file name is shown under it). Decoded as
    ``loaded.preprocess`` says: a run's size and resize mode, or ImageNet weights' transforms."""
    batch = loaded.preprocess(images)
    rows = [[i] for i in range(len(images))]
    return batch, None, rows, None, [p.name for p in images]
