"""The study's validation split, and the record of which images each learner trained on.

The validation split chooses: every classifier's best epoch, each arm's budget and the study's
best arm. So nothing that learns may see it: not the classifiers, not the GAN whose images join
their training sets, not the classifier that filters those images, the teacher that labels them
or the CAS classifier. Choosing on data a model has seen flatters exactly the models that saw it
(Cawley & Talbot 2010, "On Over-fitting in Model Selection and Subsequent Selection Bias in
Performance Evaluation", JMLR 11).

The split is therefore a property of the dataset and a **split seed**, independent of the
training seed: every run of a study (every seed, every arm) and the GAN carve the same stratified
validation part out of ``train/`` (:func:`split_train`). Each learner writes what it trained on as
:class:`SplitRecord`: the split's seed and fraction, and the SHA-256 of every image file it
learned from (``split.json`` in its run folder; a synthetic set's manifest holds the union of its
generator's and its filter's). A consumer then checks by content, not by trusting the numbers:
:func:`seen_validation` lists the validation images a record's learner trained on, whatever
split, dataset copy or file names it used.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import UserError

if TYPE_CHECKING:  # torch-free at import: the CLI takes the defaults below for its options
    from core.data import ImageTensors

SPLIT_FILE = "split.json"  # in a run folder: the SplitRecord of what the run trained on
DEFAULT_SPLIT_SEED = 0
DEFAULT_VAL_FRACTION = 0.15
_DIGEST_CHARS = 32  # 128 bits of SHA-256: no collision among any dataset's images


def image_digest(path: str | Path) -> str:
    """The SHA-256 (first 128 bits, hex) of an image file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:_DIGEST_CHARS]


def describe_split(seed: int | None, val_fraction: float) -> str:
    """A split in words, for one-line messages."""
    return f"split seed {seed}, validation fraction {val_fraction:g}"


def split_train(
    data: ImageTensors, seed: int, val_fraction: float
) -> tuple[ImageTensors, ImageTensors]:
    """The training and validation parts of decoded ``train/`` images: stratified, seeded by the
    split seed alone (:func:`core.data.stratified_split`), so every learner of a study gets the
    same parts."""
    from core.data import stratified_split

    train_idx, val_idx = stratified_split(data.labels, val_fraction, seed)
    train_idx, val_idx = _copies_to_training(data.paths, train_idx.tolist(), val_idx.tolist())
    train, val = data.subset(train_idx), data.subset(val_idx)
    train.skipped = data.skipped
    return train, val


def _copies_to_training(
    paths: list[str], train_idx: list[int], val_idx: list[int]
) -> tuple[list[int], list[int]]:
    """Validation images with a byte-identical copy in the training part move to that part: with
    a copy on each side, every learner would train on a validation image (and the synthetic-set
    check would refuse the GAN's images long after it trained). Said in one warning; a dataset
    without such copies keeps the stratified split exactly."""
    if not val_idx:
        return train_idx, val_idx
    in_training = {image_digest(paths[i]) for i in train_idx}
    moved = [i for i in val_idx if image_digest(paths[i]) in in_training]
    if not moved:
        return train_idx, val_idx
    warnings.warn(
        f"{len(moved)} validation image(s) have a byte-identical copy in the training part (e.g. "
        f"{paths[moved[0]]}) and are trained on instead; remove the copies from train/ to keep "
        "them for validation (`cli data split` lists them in split-duplicates.txt)",
        stacklevel=3,
    )
    gone = set(moved)
    return sorted(train_idx + moved), [i for i in val_idx if i not in gone]


@dataclass(frozen=True)
class SplitRecord:
    """Which real images a learner trained on, and under which split.

    ``held_out`` is False when the learner trained on every ``train/`` image on purpose
    (``cli gan-train --use-all-train``): its ``trained_on`` then covers any split's validation
    part. ``seed`` / ``val_fraction`` describe the split it held out (None when it held none)."""

    seed: int | None
    val_fraction: float
    held_out: bool
    trained_on: frozenset[str] = field(default_factory=frozenset)  # image_digest of each image

    @classmethod
    def of(
        cls, train: ImageTensors, *, seed: int | None, val_fraction: float, held_out: bool = True
    ) -> SplitRecord:
        """The record of a learner that trained on the real images of ``train``."""
        return cls(seed, val_fraction, held_out, frozenset(image_digest(p) for p in train.paths))

    def describe(self) -> str:
        """The split in words, for one-line messages."""
        if not self.held_out:
            return "every train/ image (--use-all-train: no validation split held out)"
        return describe_split(self.seed, self.val_fraction)

    def union(self, other: SplitRecord) -> SplitRecord:
        """What two learners behind one artifact saw together (a generator and its filter)."""
        held = self.held_out and other.held_out
        same = (self.seed, self.val_fraction) == (other.seed, other.val_fraction)
        return SplitRecord(
            self.seed if same else None,
            self.val_fraction if same else 0.0,
            held,
            self.trained_on | other.trained_on,
        )

    def summary(self) -> dict[str, Any]:
        """What config.json and reports show (no digests)."""
        return {
            "seed": self.seed,
            "val_fraction": self.val_fraction,
            "held_out": self.held_out,
            "n_trained_on": len(self.trained_on),
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.summary(), "trained_on_sha256": sorted(self.trained_on)}

    def to_bytes(self) -> bytes:
        """The content of a run's ``split.json``."""
        return json.dumps(self.to_json(), indent=1).encode("utf-8")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SplitRecord:
        return cls(
            data.get("seed"),
            float(data.get("val_fraction", 0.0)),
            bool(data.get("held_out", False)),
            frozenset(data.get("trained_on_sha256") or ()),
        )


def read_split(run_dir: str | Path) -> SplitRecord | None:
    """The record a run wrote (None for a run from before records were kept)."""
    path = Path(run_dir) / SPLIT_FILE
    return (
        SplitRecord.from_json(json.loads(path.read_text(encoding="utf-8")))
        if path.is_file()
        else None
    )


def learned_by(*run_dirs: str | Path) -> SplitRecord | None:
    """What the runs behind one artifact trained on together (a generator and its filter); None
    when any of them recorded nothing, so the artifact cannot be checked."""
    records = [read_split(d) for d in run_dirs]
    if not records or any(r is None for r in records):
        return None
    merged = records[0]
    for record in records[1:]:
        merged = merged.union(record)
    return merged


def seen_validation(record: SplitRecord, val: ImageTensors) -> list[str]:
    """The paths of ``val``'s images whose content ``record``'s learner trained on."""
    return [p for p in val.paths if image_digest(p) in record.trained_on]


def check_learner(option: str, run_dir: str | Path, val: ImageTensors, ours: str) -> None:
    """Refuse a classifier run (a teacher, a filter) that trained on any image of ``val``, the
    split ``ours`` describes; warn when the run recorded nothing to check."""
    record = read_split(run_dir)
    if record is None:
        warnings.warn(
            f"{option} {run_dir}: no {SPLIT_FILE}, so whether it trained on this run's validation "
            f"images cannot be checked; train it again with this version",
            stacklevel=2,
        )
        return
    seen = seen_validation(record, val)
    if seen:
        raise UserError(
            f"{option} {run_dir}: trained on {len(seen)} of this run's {len(val)} validation "
            f"images (e.g. {seen[0]}); its split: {record.describe()}, this run's: {ours}; use a "
            f"run trained with the same --split-seed and --val-fraction"
        )
