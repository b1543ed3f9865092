"""core.manifest: the typed manifest reads and writes the files ``synthesize`` has always written,
byte for byte, and keeps their digest (so runs trained before still match their sets)."""

from __future__ import annotations

import hashlib
import json
from copy import deepcopy
from pathlib import Path
from typing import Any

import pytest

from core.errors import UserError
from core.io import write_json
from core.manifest import MANIFEST_FORMAT, FidScores, Manifest, SampleFilter, Score


def _score(fid: float, n_a: int = 7, n_b: int = 16) -> dict[str, Any]:
    return {"fid": fid, "kid_mean": fid / 1000, "kid_std": 0.001, "kid_subset_size": min(n_a, n_b),
            "n_a": n_a, "n_b": n_b, "kid_subsets": 100}  # fmt: skip


# A manifest as augment/synthesize.py wrote it before core/manifest.py existed (keys in its order).
WRITTEN: dict[str, Any] = {
    "format": "shoegan-synthetic/1",
    "gan_run": "cond",
    "gan_run_dir": "runs/cond",
    "checkpoint": "runs/cond/best.pt",
    "checkpoint_sha256": "ab" * 32,
    "gan_iteration": 40,
    "per_class_models": False,
    "seed": 0,
    "batch_size": 100,
    "class_names": ["blue", "red"],
    "requested_per_class": 7,
    "counts": {"blue": 7, "red": 6},
    "image_size": 32,
    "dataset": "data/colours",
    "out": "synthetic/cond",
    "filter": {
        "classifier_run": "clf",
        "min_confidence": 0.9,
        "max_draw_factor": 3,
        "drawn": {"blue": 14, "red": 18},
        "acceptance_rate": {"blue": 0.5, "red": 0.3333333333333333},
        "cap_hit": ["red"],
    },
    "fid": {
        "extractor": "random-conv",
        "reference": "real training images of the class, at 32 px",
        "per_class": {"blue": _score(80.5), "red": _score(90.25, 6)},
        "overall": _score(70.0, 13, 32),
        "real_vs_real": {"blue": _score(12.0, 5), "red": _score(13.0, 5)},
        "real_vs_real_overall": _score(9.5, 10, 32),
        "untrained_generator": {"blue": _score(300.0), "red": _score(310.0, 6)},
        "untrained_generator_overall": _score(290.0, 13, 32),
        "note": "FID is biased upwards at small sample sizes: ...",
    },
    "options": {"gan": "cond", "per_class": 7, "out": None, "fid": True, "min_confidence": 0.9},
    "versions": {"python": "3.11.7", "torch": "2.4.0"},
    "created": "2026-12-01T10:00:00+00:00",
    "cas": {"run": "cas-resnet50", "test_acc": 0.75, "real_baseline": None},
}
# ... and with --no-fid and no classifier filter (written before any CAS).
NOT_COMPUTED = {"computed": False, "per_class": {}, "overall": None, "real_vs_real": {}}
NO_FID = {
    k: {"filter": None, "fid": NOT_COMPUTED}.get(k, v) for k, v in WRITTEN.items() if k != "cas"
}
# Older or hand-made manifests (as the test suite writes them): most keys missing.
PARTIAL = {"gan_run": "g", "fid": {"overall": {"fid": 1.0}}}
FOREIGN = {"gan_run": "g", "future_key": [1, 2], "filter": None, "seed": None, "fid": {"x": 1}}
# As synthesize writes it since issue 11: a truncation, and the k-NN diversity metrics per score.
PRDC = {"precision": 0.75, "recall": 0.5, "density": 1.125, "coverage": 0.625}
NEW_FID = {
    **{k: v for k, v in WRITTEN["fid"].items() if k != "note"},
    "per_class": {c: {**s, **PRDC} for c, s in WRITTEN["fid"]["per_class"].items()},
    "overall": {**WRITTEN["fid"]["overall"], **PRDC},
    "precision_recall_k": 3,
    "density_coverage_k": 5,
    "note": "FID is biased upwards ...",
}
NEW = {
    **{k: v for k, v in WRITTEN.items() if k not in ("class_names", "fid")},
    "truncation": 0.5,
    "class_names": WRITTEN["class_names"],
    "fid": NEW_FID,
}
CASES = {"written": WRITTEN, "no_fid": NO_FID, "partial": PARTIAL, "foreign": FOREIGN, "new": NEW}


def old_manifest_digest(path: Path) -> str:
    """classify/training/synthetic.py's manifest_digest before the typed manifest (verbatim)."""
    manifest = {k: v for k, v in json.loads(path.read_text()).items() if k not in ("cas",)}
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@pytest.mark.parametrize("name", CASES)
def test_round_trip_is_exact(name: str) -> None:
    data = deepcopy(CASES[name])
    again = Manifest.from_json(data).to_json()
    assert again == data
    assert json.dumps(again, indent=2) == json.dumps(data, indent=2)  # same keys, same order


@pytest.mark.parametrize("name", CASES)
def test_digest_and_file_bytes_unchanged(name: str, tmp_path: Path) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    write_json(old, CASES[name])  # how the manifest was written before
    manifest = Manifest.read(old)
    manifest.write(new)
    assert new.read_bytes() == old.read_bytes()
    assert manifest.digest() == old_manifest_digest(old)


def test_typed_fields_and_annotations() -> None:
    manifest = Manifest.from_json(WRITTEN)
    assert manifest.format == MANIFEST_FORMAT and manifest.counts == {"blue": 7, "red": 6}
    assert isinstance(manifest.filter, SampleFilter) and manifest.filter.cap_hit == ["red"]
    assert isinstance(manifest.fid, FidScores) and isinstance(manifest.fid.overall, Score)
    assert manifest.fid.per_class["red"].fid == 90.25 and manifest.fid.overall.n_b == 32
    # the CAS annotation does not change the digest; other content does
    from dataclasses import replace

    assert replace(manifest, cas={"run": "other"}).digest() == manifest.digest()
    assert replace(manifest, cas=None).digest() == manifest.digest()
    assert replace(manifest, seed=1).digest() != manifest.digest()
    added = replace(Manifest.from_json(PARTIAL), cas={"run": "c"}).to_json()
    assert list(added) == ["gan_run", "fid", "cas"]


def test_fresh_manifest_writes_the_old_key_order() -> None:
    data = Manifest.from_json(NO_FID)
    fresh = Manifest(
        **{k: getattr(data, k) for k in NO_FID if k != "fid"}, fid=FidScores.not_computed()
    )
    assert list(fresh.to_json()) == list(NO_FID) and fresh.to_json() == NO_FID
    assert Manifest(gan_run="g").to_json() == {
        "format": MANIFEST_FORMAT,
        "gan_run": "g",
        "filter": None,
    }
    # The keys added since keep their place in a fresh manifest and appear only with a value.
    assert list(Manifest(seed=1, batch_size=4, truncation=0.5, class_names=["a"]).to_json()) == [
        "format", "seed", "batch_size", "truncation", "class_names", "filter"
    ]  # fmt: skip
    score = Score.from_json({"fid": 1.0, **PRDC})
    assert (score.precision, score.coverage) == (0.75, 0.625)
    assert list(Score(fid=1.0, recall=0.5).to_json()) == ["fid", "recall"]


def test_new_fields_are_typed() -> None:
    manifest = Manifest.from_json(NEW)
    assert manifest.truncation == 0.5 and manifest.fid is not None
    assert manifest.fid.precision_recall_k == 3 and manifest.fid.density_coverage_k == 5
    assert manifest.fid.per_class["red"].density == 1.125 and manifest.fid.overall.recall == 0.5
    old = Manifest.from_json(WRITTEN)
    assert old.truncation is None and old.fid.overall.precision is None


def test_not_a_manifest_is_a_user_error(tmp_path: Path) -> None:
    for text in ("[1, 2]", "{not json", '{"fid": 3}', '{"fid": {"per_class": [1]}}'):
        (tmp_path / "manifest.json").write_text(text)
        with pytest.raises(UserError, match="not a synthetic-set manifest"):
            Manifest.read(tmp_path / "manifest.json")
