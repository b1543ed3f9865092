"""Test fixtures for evaluation and Grad-CAM: a tiny generated dataset and a run folder written in
the contract format (config.json, history.jsonl with FAKE epochs, best.pt/last.pt).

The model is trained for a few steps here (not by classify.training.trainer) so the tests do not depend on the
training code; the history records are invented numbers for plotting only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from classify.models import ModelConfig, build_model
from classify.training.config import TrainConfig
from core.data import to_model_input
from core.io import save_checkpoint, write_json
from core.seeding import rng_state

CLASS_NAMES = ["boot", "sandal", "sneaker"]
SIZE = 32


def make_image(label: int, rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """Class 0: bright left half, 1: bright right half, 2: bright bottom half; plus noise."""
    img = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
    half = size // 2
    if label == 0:
        img[:, :half] += 150
    elif label == 1:
        img[:, half:] += 150
    else:
        img[half:, :] += 150
    return img


def write_dataset(root: Path, n_train: int = 6, n_test: int = 5, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("test", n_test)):
        for label, name in enumerate(CLASS_NAMES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(make_image(label, rng)).save(folder / f"{name}_{i:02d}.png")
    return root


def dataset_tensors(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    labels = torch.arange(n) % len(CLASS_NAMES)
    images = np.stack([make_image(int(y), rng) for y in labels])
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels


def make_run(
    runs_dir: Path, data_root: Path, name: str = "tiny", train_steps: int = 12, seed: int = 0
) -> Path:
    """Write runs_dir/name in the classifier run format, with a briefly trained tiny ResNet-50."""
    torch.manual_seed(seed)
    train_cfg = TrainConfig(
        data=str(data_root),
        name=name,
        runs_dir=str(runs_dir),
        epochs=3,
        batch_size=12,
        image_size=SIZE,
        width=0.125,
        optimizer="adam",
        seed=seed,
    )
    model_cfg = ModelConfig(
        name=train_cfg.model,
        num_classes=len(CLASS_NAMES),
        image_size=SIZE,
        width=train_cfg.width,
        cbam_pool_types=tuple(train_cfg.cbam_pool_types),
    )
    model = build_model(model_cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    images, labels = dataset_tensors(48, seed + 1)
    model.train()
    for step in range(train_steps):
        index = torch.arange(step * 12, step * 12 + 12) % images.shape[0]
        loss = torch.nn.functional.cross_entropy(
            model(to_model_input(images[index])), labels[index]
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # So few steps leave BatchNorm's running averages far from the batch statistics: recompute
    # them exactly (cumulative average over the training images) so eval mode predicts well.
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    with torch.no_grad():
        model(to_model_input(images))
    for norm in norms:
        norm.momentum = 0.1
    model.eval()

    run_dir = runs_dir / name
    run_dir.mkdir(parents=True)
    write_json(
        run_dir / "config.json",
        {
            "train": train_cfg.to_dict(),
            "model": model_cfg.to_dict(),
            "class_names": CLASS_NAMES,
            "dataset": {
                "root": str(data_root),
                "n_train": 15,
                "n_val": 3,
                "train_class_counts": [5, 5, 5],
                "val_class_counts": [1, 1, 1],
                "skipped": [],
            },
            "synthetic": None,
            "versions": {"python": "test", "torch": torch.__version__, "torchvision": "test"},
            "created": "2026-01-01T00:00:00+00:00",
        },
    )
    # FAKE history: invented numbers, only for the curves plot.
    history = [
        {
            "epoch": e,
            "train_loss": 1.2 / e,
            "train_acc": 0.4 + 0.15 * e,
            "val_loss": 1.3 / e,
            "val_acc": 0.35 + 0.15 * e,
            "lr": 1e-3,
            "seconds": 1.0,
            "images_per_second": 10.0,
        }
        for e in (1, 2, 3)
    ]
    (run_dir / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    for which, epoch in (("best", 2), ("last", 3)):
        save_checkpoint(
            run_dir / f"{which}.pt",
            {
                "format": "shoegan-classifier/1",
                "model_config": model_cfg.to_dict(),
                "train_config": train_cfg.to_dict(),
                "class_names": CLASS_NAMES,
                "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer": optimizer.state_dict(),
                "scheduler": None,
                "scaler": {},
                "epoch": epoch,
                "best_val_acc": 0.8,
                "best_epoch": 2,
                "val_acc": 0.8 if which == "best" else 0.75,
                "rng": rng_state(),
                "versions": {"torch": torch.__version__},
            },
        )
    return run_dir


_SHARED: dict[str, Path] = {}


def shared_run(tmp_path_factory) -> tuple[Path, Path]:
    """(runs_dir, data_root) of one tiny run built once per test session and shared by the
    evaluation and Grad-CAM tests; tests that write into it copy it first (see ``copy_run``)."""
    if "runs" not in _SHARED:
        base = tmp_path_factory.mktemp("eval_shared")
        _SHARED["data"] = write_dataset(base / "data")
        _SHARED["runs"] = base / "runs"
        make_run(_SHARED["runs"], _SHARED["data"])
    return _SHARED["runs"], _SHARED["data"]


def copy_run(runs_dir: Path, dest: Path, name: str = "tiny") -> Path:
    """A private copy of ``runs_dir/name`` under ``dest`` (returns the new runs folder)."""
    import shutil

    shutil.copytree(runs_dir / name, dest / name)
    return dest
