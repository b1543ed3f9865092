"""The synthetic training set of a compared run: what its config.json recorded at training time,
the set's :class:`core.manifest.Manifest` when the folder is still there (FID/KID, the real-vs-real
floor, an untrained generator's score, CAS), notes on anything missing or changed, and a seeded
sample of its images for the report's grid. Only reads files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.data import is_image_file
from core.manifest import MANIFEST, FidScores, Manifest, score_to_json, scores_to_json
from study.compare.runs import RunResult


@dataclass
class SyntheticEntry:
    """A run's synthetic-set entry from config.json, with the set's manifest when found."""

    run: str
    recorded: dict[str, Any]  # the run's config.json "synthetic" entry, written at training time
    folder: Path | None  # None: the folder was moved or deleted
    manifest: Manifest | None = None  # None: not found
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The entry as report.json lists it (scores from the manifest, else from config.json)."""
        recorded, manifest = self.recorded, self.manifest or Manifest.from_json({})
        fid = manifest.fid or FidScores()
        return {
            "run": self.run,
            "path": recorded.get("path"),
            "folder": str(self.folder) if self.folder else None,
            "gan_run": recorded.get("gan_run") or manifest.gan_run,
            "ratio": recorded.get("ratio"),
            "counts": recorded.get("counts") or manifest.counts,
            "manifest_sha256": recorded.get("manifest_sha256"),
            "fid_per_class": scores_to_json(fid.per_class) or recorded.get("fid_per_class"),
            "fid_overall": score_to_json(fid.overall) or recorded.get("fid"),
            "real_vs_real": scores_to_json(fid.real_vs_real),
            "real_vs_real_overall": score_to_json(fid.real_vs_real_overall),
            "untrained": scores_to_json(fid.untrained_generator),
            "untrained_overall": score_to_json(fid.untrained_generator_overall),
            "cas": manifest.cas,
            "notes": list(self.notes),
        }


def _find_folder(raw: str, run_dir: Path) -> Path | None:
    path = Path(raw)
    candidates = [path] if path.is_absolute() else [path, run_dir.parent.parent / path]
    return next((c for c in candidates if c.is_dir()), None)


def read_synthetic(run: RunResult) -> SyntheticEntry | None:
    """The synthetic set a run trained on (None for a real-only run)."""
    recorded = run.synthetic
    if recorded is None:
        return None
    raw = recorded.get("path")
    folder = _find_folder(str(raw), run.run_dir) if raw else None
    result = SyntheticEntry(run.name, recorded, folder)
    if folder is None:
        result.notes.append(
            f"synthetic folder {raw} not found; numbers from {run.name}/config.json"
        )
        return result
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        result.notes.append(f"{manifest_path} missing: no FID/KID available")
        return result
    result.manifest = Manifest.read(manifest_path)
    expected = recorded.get("manifest_sha256")
    if expected and result.manifest.digest() != expected:
        # FID/KID or CAS entries are added to the manifest after training; that is expected.
        result.notes.append(
            f"{manifest_path} changed since {run.name} was trained (scores were "
            "added or the set was regenerated)"
        )
    return result


def synthetic_sample_files(
    folder: Path, class_names: Sequence[str], per_class: int, seed: int
) -> dict[str, list[Path]]:
    """Up to ``per_class`` seeded-random image files of each class of a synthetic folder."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[Path]] = {}
    for name in class_names:
        class_dir = Path(folder) / name
        files = (
            sorted(p for p in class_dir.rglob("*") if is_image_file(p))
            if class_dir.is_dir()
            else []
        )
        if not files:
            continue
        picks = rng.choice(len(files), size=min(per_class, len(files)), replace=False)
        out[name] = [files[i] for i in sorted(picks.tolist())]
    return out
