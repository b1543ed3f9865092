"""The typed manifest of a synthetic set (``synthetic/<name>/manifest.json``): its one reader and
writer.

A set describes itself: the source GAN run and checkpoint (with its hash), seed, the truncation of
the noise, per-class counts, the classifier filter, FID/KID and precision/recall/density/coverage
per class next to the real-vs-real floor and an untrained generator's score, and later
annotations (the CAS result). ``augment.synthesize`` writes it;
classifier training, CAS, the comparison report and the pipeline read it, all through
:class:`Manifest`, so a key renamed here cannot silently break a reader.

It lives in ``core/`` rather than ``augment/`` (where shared/DESIGN.md first placed it): the set is
an artifact shared between packages, and ``classify`` (which reads it when a run trains on a set)
must never import ``augment``; ``core`` is the one package both may import.

Byte-compatible with the files written before this module existed: the same keys in the same order
and the same ``format``. A manifest read from a file writes back exactly the keys it had (older
manifests lack some; keys this version does not know are kept in ``extra``), so
``Manifest.from_json(d).to_json() == d`` and :meth:`Manifest.digest` is unchanged for every
existing file. Keys added since (``truncation``, ``standing_stats``, the four diversity metrics of a
score and their ``k``) are written only by new sets and only when they have a value, so an older
manifest reads and writes back byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from core.errors import UserError
from core.io import read_json, write_json
from core.split import SplitRecord

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "shoegan-synthetic/1"
ANNOTATION_KEYS = ("cas",)  # added after synthesis; not part of what the images are
_BOOKKEEPING = ("extra", "read_keys")  # _Record fields that are not JSON keys

Codec = tuple[Callable[[Any], Any], Callable[[Any], Any]]  # (from JSON, to JSON)
R = TypeVar("R", bound="_Record")


@dataclass(frozen=True)
class _Record:
    """A JSON object whose keys are the dataclass's fields, written in field order.

    ``None`` means "key absent" except for the keys in ``_NULLABLE``, which a fresh record writes
    as ``null``. A record read from JSON remembers its keys (``read_keys``) and writes exactly
    those back (plus fields set since), so nulls and missing keys survive a round trip.
    """

    extra: dict[str, Any] = field(default_factory=dict, kw_only=True)  # unknown keys, as read
    read_keys: tuple[str, ...] | None = field(default=None, kw_only=True, compare=False, repr=False)

    _NULLABLE: ClassVar[frozenset[str]] = frozenset()
    _CODECS: ClassVar[dict[str, Codec]] = {}

    @classmethod
    def _keys(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name not in _BOOKKEEPING]

    @classmethod
    def from_json(cls: type[R], data: Any) -> R:
        if not isinstance(data, Mapping):
            raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
        values: dict[str, Any] = {}
        for key in cls._keys():
            value = data.get(key)
            codec = cls._CODECS.get(key)
            values[key] = codec[0](value) if codec and value is not None else value
        extra = {k: v for k, v in data.items() if k not in values}
        return cls(**values, extra=extra, read_keys=tuple(data))

    def to_json(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key in self._keys():
            value = getattr(self, key)
            codec = self._CODECS.get(key)
            values[key] = codec[1](value) if codec and value is not None else value
        if self.read_keys is None:
            keys = [k for k, v in values.items() if v is not None or k in self._NULLABLE]
            keys += list(self.extra)
        else:
            keys = list(self.read_keys)
            keys += [k for k, v in values.items() if k not in keys and v is not None]
        return {k: values[k] if k in values else self.extra[k] for k in keys}


@dataclass(frozen=True)
class Score(_Record):
    """One FID/KID result, as ``augment.fid``'s ``FidKidResult.to_dict()`` writes it, with the
    k-NN diversity metrics of ``augment.fid.prdc`` where computed (absent from older manifests)."""

    fid: float | None = None
    kid_mean: float | None = None
    kid_std: float | None = None
    kid_subset_size: int | None = None
    n_a: int | None = None
    n_b: int | None = None
    kid_subsets: int | None = None
    precision: float | None = None  # Kynkaanniemi et al. 2019
    recall: float | None = None
    density: float | None = None  # Naeem et al. 2020
    coverage: float | None = None


def _scores_from_json(data: Any) -> dict[str, Score]:
    if not isinstance(data, Mapping):
        raise ValueError(f"expected {{class: score}}, got {type(data).__name__}")
    return {name: Score.from_json(score) for name, score in data.items()}


def scores_to_json(scores: Mapping[str, Score] | None) -> dict[str, Any] | None:
    """``{class: Score}`` as JSON (None stays None)."""
    return None if scores is None else {name: s.to_json() for name, s in scores.items()}


def score_to_json(score: Score | None) -> dict[str, Any] | None:
    return None if score is None else score.to_json()


_SCORE: Codec = (Score.from_json, Score.to_json)
_SCORES: Codec = (_scores_from_json, scores_to_json)


@dataclass(frozen=True)
class FidScores(_Record):
    """The manifest's "fid": synthetic vs real training images of each class and overall, the
    real-vs-real floor and an untrained generator at the same sample sizes (see
    ``augment.synthesize``). ``computed`` is written (False) only when FID was skipped."""

    computed: bool | None = None
    extractor: str | None = None
    reference: str | None = None
    per_class: dict[str, Score] | None = None
    overall: Score | None = None
    real_vs_real: dict[str, Score] | None = None
    real_vs_real_overall: Score | None = None
    untrained_generator: dict[str, Score] | None = None
    untrained_generator_overall: Score | None = None
    precision_recall_k: int | None = None  # k of the k-NN balls behind each score's metrics
    density_coverage_k: int | None = None
    note: str | None = None

    _NULLABLE = frozenset({"overall"})
    _CODECS = {
        "per_class": _SCORES,
        "overall": _SCORE,
        "real_vs_real": _SCORES,
        "real_vs_real_overall": _SCORE,
        "untrained_generator": _SCORES,
        "untrained_generator_overall": _SCORE,
    }

    @classmethod
    def not_computed(cls) -> FidScores:
        """What ``synthesize --no-fid`` records."""
        return cls(computed=False, per_class={}, overall=None, real_vs_real={})


@dataclass(frozen=True)
class SampleFilter(_Record):
    """The manifest's "filter": the classifier that kept only confident samples, and what it cost."""

    classifier_run: str | None = None
    min_confidence: float | None = None
    max_draw_factor: int | None = None
    drawn: dict[str, int] | None = None
    acceptance_rate: dict[str, float] | None = None
    cap_hit: list[str] | None = None
    oversample: int | None = None  # --oversample K: the top per_class of K x per_class draws kept
    min_kept_confidence: dict[str, float] | None = None  # the lowest kept probability, per class


@dataclass(frozen=True)
class Manifest(_Record):
    """A synthetic set's ``manifest.json``; fields in the order the file lists them."""

    format: str | None = MANIFEST_FORMAT
    gan_run: str | None = None
    gan_run_dir: str | None = None
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    gan_iteration: int | None = None
    per_class_models: bool | None = None
    seed: int | None = None
    batch_size: int | None = None
    truncation: float | None = None  # the noise's truncation threshold; absent: plain N(0, 1)
    standing_stats: int | None = None  # batches of the EMA generator's standing statistics
    class_names: list[str] | None = None
    requested_per_class: int | None = None
    counts: dict[str, int] | None = None
    image_size: int | None = None
    dataset: str | None = None
    # the real images the generator (and the filter) trained on; absent: not recorded
    split: SplitRecord | None = None
    out: str | None = None
    filter: SampleFilter | None = None  # None: no classifier filter (written as null)
    fid: FidScores | None = None
    options: dict[str, Any] | None = None  # the SynthConfig, as given
    versions: dict[str, str] | None = None
    created: str | None = None
    cas: dict[str, Any] | None = None  # annotation written by ``study.cas`` after synthesis

    _NULLABLE = frozenset({"filter"})
    _CODECS = {
        "filter": (SampleFilter.from_json, SampleFilter.to_json),
        "fid": (FidScores.from_json, FidScores.to_json),
        "split": (SplitRecord.from_json, SplitRecord.to_json),
    }

    @classmethod
    def read(cls, path: str | Path) -> Manifest:
        path = Path(path)
        try:
            return cls.from_json(read_json(path))
        except ValueError as exc:  # not JSON, or not shaped like a manifest
            raise UserError(f"{path}: not a synthetic-set manifest ({exc})") from exc

    def write(self, path: str | Path) -> None:
        """Atomically write the manifest (indented JSON, as ``core.io.write_json`` writes)."""
        write_json(Path(path), self.to_json())

    def digest(self) -> str:
        """sha256 of the manifest's content, leaving out later annotations (the CAS result), so a
        run that trained on the set still matches it after ``cli cas`` has scored the set."""
        content = {k: v for k, v in self.to_json().items() if k not in ANNOTATION_KEYS}
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
