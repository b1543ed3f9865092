"""One folder per class -> the toolkit's ``train/`` + ``test/`` layout (``cli data split``).

The source folder (``SOURCE/<class>/*``) is only read. The split is built beside the output in a
hidden ``.OUT.partial`` folder and renamed to ``OUT`` once complete, so an interrupted split leaves
no half-written dataset. Files are hard-linked where the filesystem allows (no extra space; the
source files' link counts and change times move, never their bytes or names), copied otherwise,
or always with ``link=False``. Which image goes where (stratified, seeded, byte-identical files
kept on one side) is :mod:`core.split_parts`.

Unreadable images (zero-byte, truncated, not an image) are skipped with a warning, as the dataset
loader (:mod:`core.data`) skips them, or are an error with ``strict``. ``split.json`` records the
source, seed, fraction, counts, skipped files and duplicates; ``split-duplicates.txt`` lists the
byte-identical files, if any.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from core.errors import UserError
from core.io import atomic_write_text, read_json, write_json
from core.rundir import is_inside
from core.split_parts import PARTS, Assignment, SourceImage, assign_parts

SPLIT_RECORD = "split.json"  # in OUT: the record of how OUT was made from its source
DUPLICATES_FILE = "split-duplicates.txt"
FORMAT = "shoegan-folder-split/1"

Task = Callable[[str, int], Callable[[int], None] | None]  # (description, total) -> advance(n)


@dataclass(frozen=True)
class FolderSplitConfig:
    """Options of ``cli data split`` (its defaults)."""

    source: str
    out: str
    test_fraction: float = 0.2
    seed: int = 0
    link: bool = True  # hard links where possible; False: always copy
    strict: bool = False  # unreadable images are an error, not skipped
    workers: int = 4  # threads reading and hashing the images (0: inline)


@dataclass
class FolderSplit:
    """What ``split.json`` holds: how OUT was made."""

    source: str
    seed: int
    test_fraction: float
    classes: list[str]
    counts: dict[str, dict[str, int]]  # part -> class -> images
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    duplicate_groups: int = 0  # groups of byte-identical files within a class, kept together
    duplicate_files: int = 0  # files in those groups
    label_conflicts: int = 0  # groups of byte-identical files in different classes (all train)
    across_split: int = 0  # test images with a byte-identical file in train
    links: int = 0
    copies: int = 0
    format: str = FORMAT

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FolderSplit:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


# --- checks before anything is read or written ---------------------------------------------------


def check_paths(cfg: FolderSplitConfig, overwrite: bool) -> tuple[Path, Path]:
    """(source, out) once they are fit for a split; a one-line :class:`UserError` otherwise."""
    source, out = Path(cfg.source), Path(cfg.out)
    if not 0.0 < cfg.test_fraction < 1.0:
        raise UserError(f"--test-fraction {cfg.test_fraction}: must be between 0 and 1 (e.g. 0.2)")
    if cfg.seed < 0:
        raise UserError(f"--seed {cfg.seed}: must be >= 0")
    if not source.is_dir():
        raise UserError(f"{source}: folder not found; pass a folder with one sub-folder per class")
    if is_inside(out, source):
        raise UserError(
            f"--out {out}: lies inside the source {source}, which is only read; choose a folder "
            "outside it"
        )
    if is_inside(source, out):
        raise UserError(f"--out {out}: holds the source {source}; choose a folder outside it")
    if {p.name for p in source.iterdir() if p.is_dir()} >= set(PARTS):
        raise UserError(
            f"{source}: has train/ and test/ already; pass it to --data as it is, or split a "
            "folder with one sub-folder per class"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise UserError(
                f"--out {out}: exists and is not empty; pass --overwrite or another --out"
            )
        if not (out / SPLIT_RECORD).is_file():
            raise UserError(
                f"--out {out}: not made by `cli data split` (no {SPLIT_RECORD}), so --overwrite "
                "will not delete it; choose another --out"
            )
    return source, out


# --- reading: readable images and their digests --------------------------------------------------

# What the dataset loader (core.data) skips as unreadable.
UNREADABLE = (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError)


def _read(item: tuple[str, Path, Path]) -> SourceImage | tuple[str, str]:
    """The image with its digest, or (path, why it cannot be read), as core.data decides."""
    from core.data import decode_image

    label, class_dir, path = item
    try:
        decode_image(path, 8, "squash")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except UNREADABLE as exc:
        return str(path), (str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__)
    return SourceImage(label, path, path.relative_to(class_dir).as_posix(), digest)


def read_source(
    source: Path, *, strict: bool, workers: int, task: Task | None = None
) -> tuple[list[SourceImage], list[tuple[str, str]]]:
    """The readable images of every class (sorted by class, then path) and the skipped files."""
    from core.data import scan_class_folders  # torch: not while the CLI builds --help

    files = scan_class_folders(source, "source folder")
    items = [(label, source / label, path) for label, paths in files.items() for path in paths]
    advance = task("checking images", len(items)) if task else None
    images: list[SourceImage] = []
    skipped: list[tuple[str, str]] = []
    with ThreadPoolExecutor(max_workers=workers) if workers > 0 else nullcontext() as pool:
        for result in pool.map(_read, items) if pool else map(_read, items):
            (images if isinstance(result, SourceImage) else skipped).append(result)
            if advance:
                advance(1)
    _check_readable(source, files, images, skipped, strict)
    return images, skipped


def _check_readable(
    source: Path,
    files: dict[str, list[Path]],
    images: list[SourceImage],
    skipped: list[tuple[str, str]],
    strict: bool,
) -> None:
    if skipped and strict:
        path, reason = skipped[0]
        more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
        raise UserError(
            f"{path}: unreadable image ({reason}){more}; replace or remove it, or drop --strict"
        )
    readable = {image.label for image in images}
    for label in files:
        if label not in readable:
            raise UserError(
                f"{source / label}: class {label!r} has no readable images; add readable images "
                "or remove the folder"
            )
    if skipped:
        listing = "; ".join(f"{p} ({r})" for p, r in skipped[:10])
        more = f"; and {len(skipped) - 10} more" if len(skipped) > 10 else ""
        warnings.warn(f"skipped {len(skipped)} unreadable image(s): {listing}{more}", stacklevel=3)


# --- writing -------------------------------------------------------------------------------------


def _place(src: Path, dst: Path, link: bool) -> bool:
    """Hard-link (True) or copy (False) ``src`` to ``dst``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(src, dst)
            return True
        except OSError:  # another filesystem, links not allowed: copy
            pass
    shutil.copyfile(src, dst)
    return False


def split_folder(
    cfg: FolderSplitConfig, *, overwrite: bool = False, task: Task | None = None
) -> FolderSplit:
    """Write ``cfg.out``/{train,test}/<class>/ from ``cfg.source`` (see the module docstring) and
    return what ``split.json`` records."""
    source, out = check_paths(cfg, overwrite)
    images, skipped = read_source(source, strict=cfg.strict, workers=cfg.workers, task=task)
    split = assign_parts(images, cfg.test_fraction, cfg.seed, source)
    record = _record(cfg, source, split, skipped)
    tmp = out.absolute().parent / f".{out.absolute().name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    advance = task("writing the split", len(images)) if task else None
    try:
        for part in PARTS:
            for image in split.parts[part]:
                if _place(image.path, tmp / part / image.label / image.relative, cfg.link):
                    record.links += 1
                else:
                    record.copies += 1
                if advance:
                    advance(1)
        if split.duplicates or split.conflicts:
            atomic_write_text(tmp / DUPLICATES_FILE, split.duplicates_text(source))
        write_json(tmp / SPLIT_RECORD, record.to_json())
        if out.exists():
            shutil.rmtree(out)  # empty, or an earlier split (check_paths)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record


def _record(
    cfg: FolderSplitConfig, source: Path, split: Assignment, skipped: list[tuple[str, str]]
) -> FolderSplit:
    classes = sorted({image.label for part in split.parts.values() for image in part})
    return FolderSplit(
        source=str(source.resolve()),
        seed=cfg.seed,
        test_fraction=cfg.test_fraction,
        classes=classes,
        counts={
            part: {c: sum(i.label == c for i in images) for c in classes}
            for part, images in split.parts.items()
        },
        skipped=skipped,
        duplicate_groups=len(split.duplicates),
        duplicate_files=sum(len(g) for g in split.duplicates),
        label_conflicts=len(split.conflicts),
        across_split=split.across_split,
    )


def read_folder_split(out: str | Path) -> FolderSplit:
    """The record ``split_folder`` wrote in ``out``."""
    return FolderSplit.from_json(read_json(Path(out) / SPLIT_RECORD))
