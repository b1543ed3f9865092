"""Which images of a one-folder-per-class set go to ``test/``: the pure step of ``cli data split``
(:mod:`core.folder_split` reads the images and writes the result).

Each class is split on its own, by a generator seeded with the split's seed and the class name,
so adding a class leaves every other class's split as it was. Byte-identical files (same SHA-256)
of one class form one unit that goes to one side whole, so no test image has an exact copy in
``train/``; identical files under different classes (contradicting labels) all stay in ``train/``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import UserError

PARTS = ("train", "test")


@dataclass(frozen=True)
class SourceImage:
    label: str  # class folder name
    path: Path
    relative: str  # path below the class folder (kept in OUT)
    digest: str  # SHA-256 of the bytes, hex


def _class_rng(seed: int, label: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(label.encode("utf-8"))])


def _split_class(
    label: str, units: list[list[SourceImage]], forced: int, fraction: float, seed: int
) -> set[str]:
    """The digests of one class's units that go to test: seeded, about ``fraction`` of the
    class's images, never a whole unit more than that; ``forced`` images stay in train."""
    n = sum(len(u) for u in units) + forced
    target = min(max(round(n * fraction), 1), n - 1)
    test: list[list[SourceImage]] = []
    count = 0
    order = [units[i] for i in _class_rng(seed, label).permutation(len(units))]
    for unit in order:
        if count + len(unit) <= target:
            test.append(unit)
            count += len(unit)
        if count == target:
            break
    if not test:  # every unit is larger than the target: the smallest one, if train keeps some
        smallest = min(order, key=len)
        if len(order) > 1 or forced:
            test.append(smallest)
    return {unit[0].digest for unit in test}


@dataclass(frozen=True)
class Assignment:
    """The images of each part, and the byte-identical groups found on the way."""

    parts: dict[str, list[SourceImage]]  # "train" | "test" -> images
    duplicates: list[list[SourceImage]]  # groups within one class, each kept on one side
    conflicts: list[list[SourceImage]]  # groups spanning classes (contradicting labels): train

    @property
    def across_split(self) -> int:
        """Test images with a byte-identical file in train (0 by construction; checked)."""
        train = {i.digest for i in self.parts["train"]}
        return sum(i.digest in train for i in self.parts["test"])

    def duplicates_text(self, source: Path) -> str:
        """``split-duplicates.txt``: every group, each file with the part it went to."""
        test = {i.digest for i in self.parts["test"]}
        lines = [
            f"# Byte-identical images (same SHA-256) in {source}.",
            "# Within a class they were kept on one side of the split; identical files under",
            "# different classes (contradicting labels) all went to train/: check their labels.",
        ]
        for title, groups in (
            ("within a class", self.duplicates),
            ("label conflicts", self.conflicts),
        ):
            lines.append(f"\n## {title}: {len(groups)} group(s)")
            for group in groups:
                lines.append(f"sha256 {group[0].digest[:16]}")
                for image in group:
                    part = "test" if image.digest in test else "train"
                    lines.append(f"  {part}\t{image.label}/{image.relative}")
        return "\n".join(lines) + "\n"


def assign_parts(images: list[SourceImage], fraction: float, seed: int, source: Path) -> Assignment:
    """Split ``images`` (sorted by class, then path) into train and test, class by class; a
    class without two different images is a one-line :class:`UserError` naming its folder."""
    by_digest: dict[str, list[SourceImage]] = {}
    for image in images:
        by_digest.setdefault(image.digest, []).append(image)
    conflicting = {d for d, g in by_digest.items() if len({i.label for i in g}) > 1}
    test_digests: set[str] = set()
    for label in sorted({i.label for i in images}):
        units = [g for d, g in by_digest.items() if d not in conflicting and g[0].label == label]
        forced = sum(1 for i in images if i.label == label and i.digest in conflicting)
        if not units or len(units) + (forced > 0) < 2:
            _too_few(source / label, label, sum(len(u) for u in units) + forced, len(units))
        test_digests |= _split_class(label, units, forced, fraction, seed)
    parts: dict[str, list[SourceImage]] = {part: [] for part in PARTS}
    for image in images:
        parts["test" if image.digest in test_digests else "train"].append(image)
    return Assignment(
        parts,
        duplicates=[g for d, g in by_digest.items() if len(g) > 1 and d not in conflicting],
        conflicts=[g for d, g in by_digest.items() if d in conflicting],
    )


def _too_few(folder: Path, label: str, n: int, distinct: int) -> None:
    why = f"{n} readable image(s)" if n < 2 else f"{n} readable images but {distinct} distinct"
    raise UserError(
        f"{folder}: class {label!r} has {why}; a class needs at least 2 different images, one "
        "for train/ and one for test/: add images or remove the folder"
    )
