"""The embedded default dataset: the footwear classes of Fashion-MNIST (Xiao et al. 2017, MIT).

Sandal, Sneaker and Ankle boot (labels 5, 7, 9) are written as PNGs in the toolkit's layout: a
seeded, stratified small training subset (the sneaker photo set the toolkit was first asked for has
237 images per class) and the full 1,000-per-class test set. The source is the standard gzipped IDX
files, as Debian's ``dataset-fashion-mnist`` installs them.

Other classes are written the same way (``FootwearConfig.classes``, `cli data fashion-mnist`): the
seven that are not footwear are a disjoint source task to pretrain a backbone on before
``--init-from`` on the footwear set.
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core.errors import UserError
from core.io import read_json, write_json

FASHION_MNIST_CLASSES = {
    0: "tshirt_top",
    1: "trouser",
    2: "pullover",
    3: "dress",
    4: "coat",
    5: "sandal",
    6: "shirt",
    7: "sneaker",
    8: "bag",
    9: "ankle_boot",
}
FOOTWEAR_CLASSES = {5: "sandal", 7: "sneaker", 9: "ankle_boot"}
# Named groups of --classes: the footwear, the seven others, or all ten.
CLASS_GROUPS = {
    "footwear": tuple(FOOTWEAR_CLASSES.values()),
    "other": tuple(n for k, n in FASHION_MNIST_CLASSES.items() if k not in FOOTWEAR_CLASSES),
    "all": tuple(FASHION_MNIST_CLASSES.values()),
}
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
IDX_SEARCH_PATHS = ("/usr/share/datasets/fashion-mnist",)
IDX_ENV = "FASHION_MNIST_DIR"
MARKER = "footwear.json"
HOW_TO_GET = (
    "install them with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or download the "
    "four *-ubyte.gz files from https://github.com/zalandoresearch/fashion-mnist and pass --idx-dir "
    f"DIR (or set {IDX_ENV}), or pass --download to fetch them with torchvision"
)


@dataclass(frozen=True)
class FootwearConfig:
    out: str = "data/footwear"
    train_per_class: int = 240
    seed: int = 0
    idx_dir: str | None = None
    classes: str = "footwear"  # a CLASS_GROUPS name, or comma-separated Fashion-MNIST class names


def class_labels(classes: str) -> dict[int, str]:
    """``classes`` (a group name or a comma list of class names) as Fashion-MNIST label -> name;
    a one-line error naming the choices for anything else."""
    names = CLASS_GROUPS.get(classes) or tuple(n.strip() for n in classes.split(",") if n.strip())
    labels = {n: k for k, n in FASHION_MNIST_CLASSES.items()}
    unknown = [n for n in names if n not in labels]
    if unknown or len(set(names)) < 2 or len(set(names)) != len(names):
        raise UserError(
            f"--classes {classes!r}: name two or more different classes, or a group "
            f"({', '.join(CLASS_GROUPS)}); the classes are {', '.join(FASHION_MNIST_CLASSES.values())}"
        )
    return {labels[n]: n for n in sorted(names, key=labels.__getitem__)}


def find_idx_dir(idx_dir: str | Path | None = None) -> Path:
    """The folder holding the four IDX files: ``idx_dir``, $FASHION_MNIST_DIR, or Debian's path."""
    candidates = [Path(idx_dir)] if idx_dir else []
    if not idx_dir and os.environ.get(IDX_ENV):
        candidates.append(Path(os.environ[IDX_ENV]))
    if not idx_dir:
        candidates += [Path(p) for p in IDX_SEARCH_PATHS]
    for folder in candidates:
        if all((folder / name).is_file() for name in IDX_FILES.values()):
            return folder
    where = ", ".join(str(c) for c in candidates)
    raise UserError(f"Fashion-MNIST IDX files not found in {where}; {HOW_TO_GET}")


def download_idx(cache_dir: Path) -> Path:
    """Fetch the IDX files with torchvision (needs a network); returns the folder holding them."""
    from torchvision.datasets import FashionMNIST

    for train in (True, False):
        FashionMNIST(str(cache_dir), train=train, download=True)
    return cache_dir / "FashionMNIST" / "raw"


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file (LeCun et al.'s MNIST format) into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
        if zero != 0 or dtype_code != 0x08:
            raise ValueError("not an unsigned-byte IDX file")
        shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
        return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)
    except (OSError, ValueError, struct.error) as exc:
        raise UserError(
            f"{path}: unreadable IDX file ({exc}); reinstall or re-download it"
        ) from exc


def select_indices(
    labels: np.ndarray,
    per_class: int | None,
    seed: int,
    classes: dict[int, str] = FOOTWEAR_CLASSES,
) -> dict[int, np.ndarray]:
    """Per label of ``classes``, the sorted indices of a seeded random subset (all when
    ``per_class`` is None)."""
    rng = np.random.default_rng(seed)
    chosen = {}
    for label in classes:
        members = np.flatnonzero(labels == label)
        if per_class is not None:
            if per_class > members.size:
                raise UserError(
                    f"--train-per-class {per_class}: only {members.size} images per class exist"
                )
            members = np.sort(rng.permutation(members)[:per_class])
        chosen[label] = members
    return chosen


def write_footwear(cfg: FootwearConfig, *, overwrite: bool = False, download: bool = False) -> Path:
    """Write the dataset to ``cfg.out``; a complete copy made with the same settings is kept as is."""
    out = Path(cfg.out)
    marker = out / MARKER
    classes = class_labels(cfg.classes)
    settings = {"train_per_class": cfg.train_per_class, "seed": cfg.seed, "classes": cfg.classes}
    if marker.is_file() and not overwrite:
        existing = read_json(marker)
        existing.setdefault("classes", "footwear")  # written before other classes could be
        if {k: existing.get(k) for k in settings} == settings:
            return out
        raise UserError(
            f"{out}: holds a Fashion-MNIST set made with other settings (classes="
            f"{existing['classes']}, train_per_class={existing.get('train_per_class')}, "
            f"seed={existing.get('seed')}); pass --overwrite or another --out"
        )
    if out.exists() and any(out.iterdir()) and not (overwrite and marker.is_file()):
        raise UserError(
            f"{out}: folder exists and is not a Fashion-MNIST set; choose another --out"
        )
    if download and not cfg.idx_dir:
        idx_dir = download_idx(Path.home() / ".cache" / "shoegan" / "fashion-mnist")
    else:
        idx_dir = find_idx_dir(cfg.idx_dir)
    arrays = {key: read_idx(idx_dir / name) for key, name in IDX_FILES.items()}

    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    counts: dict[str, dict[str, int]] = {}
    for split, per_class in (("train", cfg.train_per_class), ("test", None)):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        counts[split] = {}
        for label, indices in select_indices(labels, per_class, cfg.seed, classes).items():
            folder = tmp / split / classes[label]
            folder.mkdir(parents=True)
            for index in indices:
                Image.fromarray(images[index], mode="L").save(folder / f"{split}_{index:05d}.png")
            counts[split][classes[label]] = int(indices.size)
    write_json(tmp / MARKER, {**asdict(cfg), "source": str(idx_dir), "counts": counts})
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out)
    return out
