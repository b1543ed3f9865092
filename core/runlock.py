"""One job at a time per run folder: ``runs/NAME/.lock``.

A trainer (rank 0 of a multi-process job) takes the lock before it reads any data and keeps it
until it ends; a second job started on the same run name (another process, another torchrun job)
refuses with a one-line error naming the holder. The lock is an exclusive ``flock`` on the file,
which the kernel drops when its process ends in any way, SIGKILL included; the file's JSON says who
holds it (host, pid, start time, command, world size). A lock file that nobody holds any more
(its process was killed before it could remove it) is stale: the next job takes it over, with a
warning naming the process that left it. On a shared filesystem across machines the ``flock``
needs the filesystem's lock support (NFSv4 has it; check yours); where there is no ``fcntl`` (Windows) runs are
not locked.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import socket
import sys
import warnings
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.io import writing

LOCK_NAME = ".lock"
_held: dict[str, tuple[int, bool]] = {}  # lock path -> (open fd, whether we created the folder)


def holder_info(world_size: int) -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "world_size": world_size,
        "command": " ".join(sys.argv),
    }


def describe(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "another process (no details in the lock file)"
    world = holder.get("world_size", 1)
    job = f"a {world}-process job" if world and world > 1 else "a process"
    return (
        f"{job}: pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')} "
        f"(`{holder.get('command', '?')}`)"
    )


def _read(fd: int) -> dict[str, Any] | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(fd, 65536):
        raw += chunk
    try:
        holder = json.loads(raw.decode("utf-8")) if raw.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return holder if isinstance(holder, dict) else None


def acquire(folder: Path, world_size: int = 1) -> None:
    """Take ``folder/.lock`` for this process (creating ``folder`` if needed); UserError when a
    live job holds it; a warning when a stale one is taken over. Idempotent within a process."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return
    path = Path(folder) / LOCK_NAME
    if str(path) in _held:
        return
    created = not Path(folder).exists()
    with writing(path):  # a full or read-only disk: one line, before any data is read
        Path(folder).mkdir(parents=True, exist_ok=True)
    while True:
        with writing(path):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read(fd)
            os.close(fd)
            raise UserError(
                f"{folder}: in use by {describe(holder)}; wait for it to finish or stop it "
                f"(delete {path} only if that job is gone)"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the file as we opened it: try the new one
    previous = _read(fd)
    if previous:
        warnings.warn(
            f"{path}: stale lock of {describe(previous)} taken over (that process is no longer "
            "running; its run was stopped without cleaning up)",
            stacklevel=2,
        )
    info = (json.dumps(holder_info(world_size)) + "\n").encode("utf-8")
    try:
        with writing(path, len(info)):
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, info)
            os.fsync(fd)
    except UserError:
        os.close(fd)
        path.unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):
                Path(folder).rmdir()
        raise
    _held[str(path)] = (fd, created)


def release(folder: Path) -> None:
    """Drop this process's lock on ``folder`` and remove the file (and the folder, when the lock
    created it and nothing else was written there: a job that failed before it began)."""
    path = Path(folder) / LOCK_NAME
    entry = _held.pop(str(path), None)
    if entry is None:
        return
    fd, created = entry
    try:
        path.unlink(missing_ok=True)
    finally:
        os.close(fd)
    if created:
        with contextlib.suppress(OSError):
            Path(folder).rmdir()  # only when empty


def is_held(folder: Path) -> bool:
    return str(Path(folder) / LOCK_NAME) in _held


def clear(folder: Path) -> None:
    """Delete everything in ``folder`` except its lock file (an ``--overwrite`` keeps its lock)."""
    for child in Path(folder).iterdir():
        if child.name == LOCK_NAME:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
