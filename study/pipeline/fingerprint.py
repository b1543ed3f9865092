"""A study's dataset, fingerprinted. The pipeline finds its finished steps by name, so a study
resumed on images that changed since it started (a re-split, files added, removed or edited)
would reuse classifiers and a GAN trained on the old ones. It records the fingerprint of its
dataset's files when it first runs and refuses, in one line, to go on with different ones."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from core.data import scan_dataset
from core.errors import UserError
from core.io import read_json, write_json
from core.split import image_digest

FINGERPRINT_FILE = "dataset.json"  # runs/<prefix>dataset.json


def dataset_fingerprint(root: Path) -> dict[str, Any]:
    """The SHA-256 over every image's split, class, path under ``root`` and content, with the
    image counts."""
    index = scan_dataset(root)
    digest = hashlib.sha256()
    for split, samples in (("train", index.train), ("test", index.test)):
        for sample in samples:
            name = Path(sample.path).relative_to(index.root).as_posix()
            label = index.class_names[sample.label]
            digest.update(f"{split}\0{label}\0{name}\0{image_digest(sample.path)}\n".encode())
    return {"sha256": digest.hexdigest(), "train": len(index.train), "test": len(index.test)}


def check_dataset(root: Path, runs: Path, prefix: str) -> dict[str, Any]:
    """Record ``root``'s fingerprint for the study whose runs are ``runs/<prefix>*``, or refuse
    images that differ from the recorded ones; returns the fingerprint."""
    path = runs / f"{prefix}{FINGERPRINT_FILE}"
    now = dataset_fingerprint(root)
    if not path.is_file():
        write_json(path, now)
        return now
    before = read_json(path)
    if before.get("sha256") != now["sha256"]:
        raise UserError(
            f"{root}: its images changed since this study's runs in {runs}/ were made ("
            f"{before.get('train')} training and {before.get('test')} test images then, "
            f"{now['train']} and {now['test']} now), and its finished steps would be reused; "
            f"start the study afresh with another --runs-dir and --synthetic-dir, or delete "
            f"{runs}/{prefix}* and the synthetic set of {prefix}gan"
        )
    return now
