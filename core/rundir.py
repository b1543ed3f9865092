"""The run folder's lifecycle, one for the classifier and the GAN trainers alike.

``runs/NAME/`` holds ``config.json`` (stamped with library versions, ``created`` and one
``resumed`` time per resume), ``history.jsonl`` (one line per epoch or logging interval),
``last.pt`` (the newest state) and ``best.pt``, and ``eval/`` (:mod:`core.evaldir`). A trainer
goes through :class:`RunDir`:

1. :meth:`RunDir.open` before any data is read: refuses contradictory flags, a taken name, a
   resume without ``last.pt``, a folder inside the dataset; returns ``last.pt`` on resume;
2. :meth:`RunDir.begin` once the data has loaded: creates (or replaces) the folder, so a bad
   dataset leaves no folder behind and deletes no run;
3. :meth:`RunDir.truncate_history` on resume (drop lines newer than the checkpoint),
   :meth:`RunDir.write_config`, :meth:`RunDir.append_history`, :meth:`RunDir.save`;
4. :meth:`RunDir.stop_report` after Ctrl-C or SIGTERM: what ``last.pt`` holds, how to resume.
:meth:`RunDir.lock` keeps a second job off a run in use (:mod:`core.runlock`). With several
processes only rank 0 writes: the writing methods do nothing on the others (``is_main``).

Readers of finished runs use the functions below the class (:func:`resolve_run_dir`,
:func:`checkpoint_path`, :func:`training_complete`, ...); :func:`core.evaldir.eval_staleness`
says whether ``eval/`` is current. Checkpoints keep their training configuration under :data:`CONFIG_KEY`; classifier checkpoints
written before the layout was shared used ``train_config``, still read (:func:`checkpoint_config`).
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import runlock
from core.distributed import is_main
from core.errors import UserError
from core.interrupts import stopped_by
from core.io import (
    append_jsonl,
    atomic_write_bytes,
    checkpoint_bytes,
    load_checkpoint,
    read_json,
    read_jsonl,
    write_json,
    write_jsonl,
)

if TYPE_CHECKING:
    from core.data import ImageTensors

CONFIG_JSON = "config.json"
HISTORY_JSONL = "history.jsonl"
CHECKPOINT_FILES = {"best": "best.pt", "last": "last.pt"}
CONFIG_KEY = "config"  # a checkpoint's training configuration (nanoGPT's name for it)
LEGACY_CONFIG_KEYS = ("train_config",)  # classifier checkpoints before the shared layout


# --- stamps ------------------------------------------------------------------------------------


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    import torch

    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),  # a str subclass: plain in checkpoints
        "torchvision": version("torchvision"),
    }


def images_sha256(*sets: ImageTensors) -> str:
    """Fingerprint of decoded training images and labels (a resumed run must see the same ones)."""
    digest = hashlib.sha256()
    for tensors in sets:
        digest.update(tensors.images.contiguous().numpy().tobytes())
        digest.update(tensors.labels.numpy().tobytes())
    return digest.hexdigest()


def stamped(content: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """``content`` + versions + ``created`` (kept from ``previous``, the config.json being resumed)
    + on resume the list ``resumed`` with this time appended."""
    out = {**content, "versions": versions(), "created": now()}
    if previous is not None:
        out["created"] = previous.get("created", out["created"])
        earlier = previous.get("resumed", [])
        out["resumed"] = [*([earlier] if isinstance(earlier, str) else earlier), now()]
    return out


def checkpoint_config(state: dict[str, Any], path: Path) -> dict[str, Any]:
    """The training configuration stored in checkpoint ``state`` (read from ``path``)."""
    for key in (CONFIG_KEY, *LEGACY_CONFIG_KEYS):
        if key in state:
            return state[key]
    raise UserError(f"{path}: checkpoint lacks its training configuration; retrain the run")


def stop_notice(step: str) -> str:
    """What a display shows when the first Ctrl-C is deferred to the end of the current ``step``."""
    return (
        f"stopping after this {step} to save the run (Ctrl-C again: stop at once, without saving)"
    )


def is_inside(path: Path, folder: Path) -> bool:
    """True when ``path`` is ``folder`` or lies below it (after resolving links)."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


# --- the folder a trainer writes -----------------------------------------------------------------


@dataclass(frozen=True)
class RunDir:
    """``runs_dir/name``: the folder one training run owns (see the module docstring)."""

    runs_dir: Path
    name: str

    @classmethod
    def of(cls, runs_dir: str | Path, name: str) -> RunDir:
        return cls(Path(runs_dir), name)

    @classmethod
    def at(cls, path: str | Path) -> RunDir:
        path = Path(path)
        return cls(path.parent, path.name)

    @property
    def path(self) -> Path:
        return self.runs_dir / self.name

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_JSON

    @property
    def history_path(self) -> Path:
        return self.path / HISTORY_JSONL

    @property
    def last(self) -> Path:
        return self.path / CHECKPOINT_FILES["last"]

    @property
    def best(self) -> Path:
        return self.path / CHECKPOINT_FILES["best"]

    def taken(self) -> bool:
        """The folder holds something (its lock file aside)."""
        return self.path.exists() and any(p.name != runlock.LOCK_NAME for p in self.path.iterdir())

    def lock(self, world_size: int = 1) -> None:
        """Take the run's lock (:mod:`core.runlock`); :meth:`unlock` drops it."""
        runlock.acquire(self.path, world_size)

    def unlock(self) -> None:
        runlock.release(self.path)

    # -- before anything is written ----------------------------------------------------------------
    def check(self, *, resume: bool, overwrite: bool) -> None:
        """Refuse contradictory flags, a resume without ``last.pt`` and (unless ``overwrite``) a
        name that is taken; writes nothing."""
        if resume and overwrite:
            raise UserError("--resume and --overwrite contradict each other: pick one")
        if resume and not self.last.is_file():
            raise UserError(
                f"{self.path}: nothing to resume (no last.pt); drop --resume to start it"
            )
        if not resume and not overwrite and self.taken():
            raise UserError(
                f"{self.path}: a run of that name exists; pass --resume to continue it, "
                "--overwrite to replace it, or choose another --name"
            )

    def refuse_inside(self, dataset: str | Path) -> None:
        if is_inside(self.path, Path(dataset)):
            raise UserError(
                f"--runs-dir {self.runs_dir}: lies inside the dataset {dataset}; "
                "runs are never written into a dataset folder"
            )

    def open(self, *, resume: bool, overwrite: bool, dataset: str | Path) -> dict[str, Any] | None:
        """All refusals that need no data (:meth:`check`, :meth:`refuse_inside`); on resume the
        contents of ``last.pt``, else ``None``."""
        self.check(resume=resume, overwrite=overwrite)
        self.refuse_inside(dataset)
        return load_checkpoint(self.last) if resume else None

    def begin(self, *, resume: bool, overwrite: bool, dataset_root: Path) -> None:
        """Once the data has loaded: refuse a folder inside the scanned dataset root, then create
        the folder (deleting an existing run first with ``overwrite``); a resume keeps it."""
        self.refuse_inside(dataset_root)
        if resume or not is_main():
            return
        self.check(resume=False, overwrite=overwrite)
        if self.taken():
            runlock.clear(self.path)  # everything but the lock this job holds
        self.path.mkdir(parents=True, exist_ok=True)

    # -- while training --------------------------------------------------------------------------
    def write_config(self, content: dict[str, Any], *, resume: bool) -> None:
        """``config.json`` = ``content`` :func:`stamped` (a resume keeps the creation time)."""
        if not is_main():
            return
        previous = read_json(self.config_path) if resume and self.config_path.is_file() else None
        write_json(self.config_path, stamped(content, previous))

    def history(self) -> list[dict[str, Any]]:
        return read_jsonl(self.history_path)

    def append_history(self, record: dict[str, Any]) -> None:
        if is_main():
            append_jsonl(self.history_path, record)

    def truncate_history(self, step: int, key: str) -> None:
        """On resume: drop history lines written after the checkpoint (``record[key] > step``)."""
        if is_main():
            write_jsonl(self.history_path, [r for r in self.history() if r[key] <= step])

    def save(self, state: dict[str, Any], *which: str) -> None:
        """Write checkpoint ``state`` atomically to each of ``which`` (``"last"``, ``"best"``)."""
        if not is_main():
            return
        payload = checkpoint_bytes(state)
        for name in which:
            atomic_write_bytes(self.path / CHECKPOINT_FILES[name], payload)

    def write_file(self, relative: str | Path, data: bytes) -> None:
        """Write ``data`` atomically to ``relative`` inside the run folder (e.g. a sample grid)."""
        if is_main():
            atomic_write_bytes(self.path / relative, data)

    # -- after Ctrl-C or SIGTERM -----------------------------------------------------------------
    def resume_command(self, command: str) -> str:
        return f"cli {command} --name {self.name} --runs-dir {self.runs_dir} --resume"

    def stop_report(self, command: str, *, saved_now: str | None, held: str) -> tuple[str, bool]:
        """The message of an interrupted run and whether it saved now: ``saved_now`` says what the
        ``last.pt`` just written holds; else ``held`` what an earlier ``last.pt`` holds."""
        if saved_now is None and not self.last.is_file():
            return (
                f"{stopped_by()} before any state was saved; start {self.path} again with "
                f"`cli {command} ... --name {self.name} --overwrite`",
                False,
            )
        return (
            f"{stopped_by()}: {self.last} holds {saved_now or held}; "
            f"continue with `{self.resume_command(command)}`",
            saved_now is not None,
        )


# --- reading a run folder -------------------------------------------------------------------------


def _list_runs(runs_dir: Path) -> list[str]:
    if not runs_dir.is_dir():
        return []
    return sorted(p.name for p in runs_dir.iterdir() if (p / CONFIG_JSON).is_file())


def resolve_run_dir(run: str | Path, runs_dir: str | Path = "runs") -> Path:
    """A run name under ``runs_dir``, or a path to a run folder; UserError when neither exists."""
    runs_dir = Path(runs_dir)
    for candidate in (runs_dir / run, Path(run)):
        if candidate.is_dir():
            return candidate
    known = _list_runs(runs_dir)
    listing = f"runs there: {', '.join(known[:12])}" if known else "it has no runs yet"
    raise UserError(
        f"run {str(run)!r} not found in {runs_dir}/ ({listing}); train it first or pass "
        "--runs-dir DIR"
    )


def checkpoint_path(run_dir: Path, which: str) -> Path:
    """``best`` / ``last``: the run's file; a ``.pt`` path: in the run folder if there, else as is."""
    if which in CHECKPOINT_FILES:
        path = Path(run_dir) / CHECKPOINT_FILES[which]
        if not path.is_file():
            other = "last" if which == "best" else "best"
            raise UserError(
                f"{path}: checkpoint not found; the run has no {which}.pt yet (finish "
                f"or resume training, or pass --checkpoint {other})"
            )
        return path
    for candidate in (Path(run_dir) / which, Path(which)) if which.endswith(".pt") else ():
        if candidate.is_file():
            return candidate
    choices = " or ".join(CHECKPOINT_FILES)
    raise UserError(f"--checkpoint {which!r}: choose {choices} (or an existing .pt file)")


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The run's ``config.json``, or ``{}`` when it has none."""
    path = Path(run_dir) / CONFIG_JSON
    return read_json(path) if path.is_file() else {}


def training_complete(run_dir: Path, steps: int, key: str = "epoch") -> bool:
    """True when ``run_dir`` holds ``best.pt`` and its history reached ``steps`` (its ``key``:
    ``epoch`` for a classifier, ``iteration`` for a GAN)."""
    if not (Path(run_dir) / CHECKPOINT_FILES["best"]).is_file():
        return False
    history = read_jsonl(Path(run_dir) / HISTORY_JSONL)
    return max((r.get(key, 0) for r in history), default=0) >= steps
