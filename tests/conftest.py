"""The suite's shared machinery: one toy-dataset generator, one CPU thread per test, and the tiny
classifier run that several test files read.

- ``make_dataset`` writes ROOT/{train,test}/<class>/*.png from a named *pattern* (coloured shapes
  on noise, bright halves, solid colours); ``toy_images`` draws the same patterns as tensors.
- Every test (and every module or session fixture) runs with one intra-op thread: tiny models are
  dominated by per-op overhead, and on a shared two-core machine two OpenMP threads per process
  made tests 10-40x slower. ``OMP_NUM_THREADS`` is set as well, because
  ``core.device.configure_cpu_threads`` (called by the trainers on CPU) keeps an explicit setting.
- ``tiny_run`` is a briefly trained tiny ResNet-50 in the classifier run format, built once per
  session; ``private_run`` is a copy for tests that write into it; ``make_run`` writes more such
  runs (the weights are trained once per seed and reused).

Library imports sit inside the functions so that a library import error fails the tests that need
it rather than the collection of the whole suite.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

if TYPE_CHECKING:
    from augment.gan.config import GanConfig
    from classify.models import ModelConfig
    from classify.training.config import TrainConfig

# --- the toy-dataset generator --------------------------------------------------------------------

Drawer = Callable[[int, int, np.random.Generator], np.ndarray]  # (label, size, rng) -> H x W x 3


@dataclass(frozen=True)
class Pattern:
    """The classes of a toy dataset and how one image of class ``label`` is drawn."""

    classes: tuple[str, ...]
    draw: Drawer


SHAPE_COLOURS = ((220, 40, 40), (40, 200, 60), (50, 70, 230))  # circle, square, triangle
SOLID_COLOURS = ((20, 40, 230), (230, 30, 30))  # blue, red


def draw_shape(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A coloured circle (0), square (1) or triangle (2) of random size and place on grey noise."""
    noise = rng.integers(90, 140, (size, size, 3), dtype=np.uint8)
    img = Image.fromarray(noise)
    draw = ImageDraw.Draw(img)
    r = int(rng.integers(size // 5, size // 3))
    cx, cy = (int(v) for v in rng.integers(r + 1, size - r - 1, 2))
    box = (cx - r, cy - r, cx + r, cy + r)
    colour = SHAPE_COLOURS[label]
    if label == 0:
        draw.ellipse(box, fill=colour)
    elif label == 1:
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    return np.asarray(img)


def draw_half(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Dark noise with a bright left (0), right (1) or bottom (2) half."""
    img = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
    half = size // 2
    if label == 0:
        img[:, :half] += 150
    elif label == 1:
        img[:, half:] += 150
    else:
        img[half:, :] += 150
    return img


def draw_solid(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A solid blue (0) or red (1) with a little per-pixel noise."""
    pixels = np.array(SOLID_COLOURS[label])[None, None] + rng.integers(-12, 13, (size, size, 3))
    return pixels.clip(0, 255).astype(np.uint8)


PATTERNS = {
    "shapes": Pattern(("circle", "square", "triangle"), draw_shape),
    "halves": Pattern(("boot", "sandal", "sneaker"), draw_half),
    "colours": Pattern(("blue", "red"), draw_solid),
}


def _class_names(pattern: Pattern, classes: int | Sequence[str] | None) -> list[str]:
    if classes is None:
        return list(pattern.classes)
    count = classes if isinstance(classes, int) else len(classes)
    if not 0 < count <= len(pattern.classes):
        raise ValueError(f"{count} classes: this pattern draws 1 to {len(pattern.classes)}")
    return list(pattern.classes[:count]) if isinstance(classes, int) else list(classes)


def write_dataset(
    root: Path,
    pattern: str = "shapes",
    train_per_class: int = 12,
    test_per_class: int = 4,
    size: int = 32,
    seed: int = 0,
    classes: int | Sequence[str] | None = None,
    mode: str = "RGB",
    ext: str = "png",
    name: str = "{index:03d}",
) -> Path:
    """Write ROOT/{train,test}/<class>/<name>.<ext> and return ROOT.

    ``classes``: how many of the pattern's classes (an int), or other names for its first classes
    (label i is drawn as the pattern's class i). ``name`` is formatted with ``index`` and ``cls``.
    A split with no images per class is not written. One seeded generator draws every image in
    the order split, class, index, so a dataset is the same file for file on every call.
    """
    chosen = PATTERNS[pattern]
    names = _class_names(chosen, classes)
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        if count == 0:
            continue
        for label, cls in enumerate(names):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                img = Image.fromarray(chosen.draw(label, size, rng))
                if mode != "RGB":
                    img = img.convert(mode)
                img.save(folder / f"{name.format(index=index, cls=cls)}.{ext}")
    return root


def draw_images(
    pattern: str, n: int, seed: int, size: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images of ``pattern`` as (uint8 N x 3 x H x W, labels 0, 1, 2, 0, ...)."""
    chosen = PATTERNS[pattern]
    rng = np.random.default_rng(seed)
    labels = torch.arange(n) % len(chosen.classes)
    images = np.stack([chosen.draw(int(y), size, rng) for y in labels])
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels


def digest_tree(root: Path) -> str:
    """Hash of every path and file content below ``root`` (to prove nothing was written there)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def make_dataset() -> Callable[..., Path]:
    """The toy-dataset generator (``write_dataset``)."""
    return write_dataset


@pytest.fixture(scope="session")
def toy_images() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """The generator's patterns as tensors (``draw_images``)."""
    return draw_images


@pytest.fixture(scope="session")
def tree_digest() -> Callable[[Path], str]:
    """``digest_tree``: a hash of a folder, to prove that nothing was written into it."""
    return digest_tree


# --- threads --------------------------------------------------------------------------------------

TEST_THREADS = 1


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """``n`` intra-op threads (and ``OMP_NUM_THREADS=n``) inside, the previous values after."""
    saved_threads, saved_env = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(n)
    os.environ["OMP_NUM_THREADS"] = str(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved_threads)
        if saved_env is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved_env


@pytest.fixture(scope="session", autouse=True)
def _session_threads() -> Iterator[None]:
    # Module and session fixtures (the trained runs) are set up before any test's own fixtures.
    with torch_threads(TEST_THREADS):
        yield


@pytest.fixture(autouse=True)
def _test_threads() -> Iterator[None]:
    # Per test, so that a test (or library code) changing the count cannot leak into the next.
    with torch_threads(TEST_THREADS):
        yield


@pytest.fixture(scope="module")
def standin_features() -> Iterator[None]:
    """FID on the tiny random-conv stand-in for a whole module (``pytestmark =
    pytest.mark.usefixtures("standin_features")``): through the environment, as no command offers
    it (its numbers are not FID)."""
    from commands.configs import FEATURES_ENV

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(FEATURES_ENV, "random-conv")
        yield


# --- the tiny classifier run ----------------------------------------------------------------------

RUN_SIZE, RUN_BATCH = 32, 12


def _train_config(data_root: Path, runs_dir: Path, name: str, seed: int) -> TrainConfig:
    from classify.training.config import TrainConfig

    return TrainConfig(data=str(data_root), name=name, runs_dir=str(runs_dir), epochs=3,
                       batch_size=RUN_BATCH, image_size=RUN_SIZE, width=0.125, optimizer="adam",
                       seed=seed)  # fmt: skip


@dataclass
class TinyClassifier:
    """A tiny ResNet-50 trained for a few steps on "halves" images, with its optimizer."""

    model_config: ModelConfig
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer


def train_tiny_classifier(seed: int = 0, train_steps: int = 12) -> TinyClassifier:
    """Train directly (not through classify.training.trainer), so that the evaluation tests do
    not depend on the training code."""
    from classify.models import ModelConfig, build_model
    from core.data import to_model_input

    torch.manual_seed(seed)
    train_cfg = _train_config(Path("."), Path("."), "tiny", seed)
    model_cfg = ModelConfig(name=train_cfg.model, num_classes=3, image_size=RUN_SIZE,
                            width=train_cfg.width,
                            cbam_pool_types=tuple(train_cfg.cbam_pool_types))  # fmt: skip
    model = build_model(model_cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    images, labels = draw_images("halves", 48, seed + 1)
    model.train()
    for step in range(train_steps):
        index = torch.arange(step * RUN_BATCH, (step + 1) * RUN_BATCH) % images.shape[0]
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
    return TinyClassifier(model_cfg, model, optimizer)


def write_run(
    trained: TinyClassifier, runs_dir: Path, data_root: Path, name: str = "tiny", seed: int = 0
) -> Path:
    """Write runs_dir/name in the classifier run format: config.json, a FAKE history.jsonl (invented
    numbers, only for the curves plot), best.pt (epoch 2) and last.pt (epoch 3)."""
    from core.io import save_checkpoint, write_json
    from core.seeding import rng_state

    class_names = list(PATTERNS["halves"].classes)
    train_cfg = _train_config(data_root, runs_dir, name, seed)
    model_cfg = trained.model_config
    run_dir = runs_dir / name
    run_dir.mkdir(parents=True)
    write_json(run_dir / "config.json", {
        "train": train_cfg.to_dict(), "model": model_cfg.to_dict(), "class_names": class_names,
        "dataset": {"root": str(data_root), "n_train": 15, "n_val": 3,
                    "train_class_counts": [5, 5, 5], "val_class_counts": [1, 1, 1], "skipped": []},
        "synthetic": None,
        "versions": {"python": "test", "torch": torch.__version__, "torchvision": "test"},
        "created": "2026-01-01T00:00:00+00:00",
    })  # fmt: skip
    history = [{"epoch": e, "train_loss": 1.2 / e, "train_acc": 0.4 + 0.15 * e,
                "val_loss": 1.3 / e, "val_acc": 0.35 + 0.15 * e, "lr": 1e-3, "seconds": 1.0,
                "images_per_second": 10.0} for e in (1, 2, 3)]  # fmt: skip
    (run_dir / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    weights = {k: v.detach().cpu() for k, v in trained.model.state_dict().items()}
    for which, epoch in (("best", 2), ("last", 3)):
        save_checkpoint(run_dir / f"{which}.pt", {
            "format": "shoegan-classifier/1", "model_config": model_cfg.to_dict(),
            "train_config": train_cfg.to_dict(), "class_names": class_names, "model": weights,
            "optimizer": trained.optimizer.state_dict(), "scheduler": None, "scaler": {},
            "epoch": epoch, "best_val_acc": 0.8, "best_epoch": 2,
            "val_acc": 0.8 if which == "best" else 0.75, "rng": rng_state(),
            "versions": {"torch": torch.__version__},
        })  # fmt: skip
    return run_dir


@pytest.fixture(scope="session")
def make_run() -> Callable[..., Path]:
    """``make_run(runs_dir, data_root, name="tiny", seed=0)``: write a tiny run (``write_run``);
    the weights for each seed are trained once per session."""
    trained: dict[int, TinyClassifier] = {}

    def make(runs_dir: Path, data_root: Path, name: str = "tiny", seed: int = 0) -> Path:
        if seed not in trained:
            trained[seed] = train_tiny_classifier(seed)
        return write_run(trained[seed], runs_dir, data_root, name, seed)

    return make


@pytest.fixture(scope="session")
def tiny_run(
    tmp_path_factory: pytest.TempPathFactory, make_run: Callable[..., Path]
) -> tuple[Path, Path]:
    """(runs_dir, data_root): the run "tiny" on a "halves" dataset (6 train and 5 test images per
    class, named <class>_NN.png), shared by the evaluation, Grad-CAM and other read-only tests."""
    base = tmp_path_factory.mktemp("tiny_run")
    data = write_dataset(base / "data", "halves", 6, 5, name="{cls}_{index:02d}")
    make_run(base / "runs", data)
    return base / "runs", data


@pytest.fixture
def private_run(tiny_run: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """(runs_dir, data_root): a copy of ``tiny_run`` under ``tmp_path``, for tests that write."""
    runs_dir, data = tiny_run
    shutil.copytree(runs_dir / "tiny", tmp_path / "runs" / "tiny")
    return tmp_path / "runs", data


# --- the GAN --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_gan_config() -> Callable[..., GanConfig]:
    """``tiny_gan_config(data, runs, **overrides)``: a GanConfig small enough to train for a few
    dozen iterations in seconds on a CPU, scored with the random-conv stand-in extractor."""
    from augment.gan.config import GanConfig

    def make(data: Path, runs: Path, **overrides: object) -> GanConfig:
        base = dict(data=str(data), runs_dir=str(runs), name="g", iterations=6, batch_size=8,
                    ngf=8, ndf=8, z_size=16, embed_dim=8, eval_every=3, fid_samples=8,
                    grid_columns=4, log_every=2, device="cpu",
                    feature_extractor="random-conv")  # fmt: skip
        base.update(overrides)
        return GanConfig(**base)

    return make


@pytest.fixture
def private_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A per-test feature / weights cache folder, so no test reads another's cached features."""
    monkeypatch.setenv("SHOEGAN_CACHE_DIR", str(tmp_path / "cache"))
