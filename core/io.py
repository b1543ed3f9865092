"""Atomic file writes, JSON / JSON-lines, torch checkpoints and file hashes.

Every file a run owns is written to a temporary sibling first and then renamed over the target, so an
interrupted job never leaves a half-written checkpoint or JSON file behind. A write that fails (a
full disk, a read-only or forbidden folder) is a one-line :class:`UserError` naming the file, and
for a full disk the space the file needs and what is free on its filesystem (:func:`writing`); the
file it would have replaced is left as it was.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.errors import UserError

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
REFUSED = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
WRITE_HINT = "free space or choose another output folder"


def human_bytes(n: float) -> str:
    """``95 MB``, ``2.1 MB``, ``512 kB``, ``10 bytes`` (decimal units, as ``df -H`` counts)."""
    if n < 1000:
        return f"{int(n)} bytes"
    for unit in ("kB", "MB", "GB", "TB"):
        n /= 1000
        if n < 999.5 or unit == "TB":
            return f"{n:.1f} {unit}" if n < 9.95 else f"{n:.0f} {unit}"
    raise AssertionError("unreachable")


def _volume(path: Path) -> tuple[Path, int | None]:
    """The mount point of the filesystem ``path`` is (or would be) on, and its free bytes."""
    probe = Path(os.path.realpath(Path(path).absolute()))
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free: int | None = shutil.disk_usage(probe).free
    except OSError:
        free = None
    mount = probe
    while not os.path.ismount(mount) and mount != mount.parent:
        mount = mount.parent
    return mount, free


def write_error(path: Path, exc: OSError, size: int | None = None) -> UserError:
    """A one-line error for ``exc``, raised while writing ``path`` (``size`` bytes, if known)."""
    reason = exc.strerror or exc.__class__.__name__
    mount, free = _volume(path)
    if exc.errno in NO_SPACE:
        needs = f"needs ~{human_bytes(size)}, " if size else ""
        room = f"{human_bytes(free)} free" if free is not None else "free space unknown"
        return UserError(f"{reason} writing {path} ({needs}{room} on {mount}): {WRITE_HINT}")
    if exc.errno == errno.EROFS:
        return UserError(f"{reason} writing {path} ({mount}): choose another output folder")
    if exc.errno in REFUSED:
        return UserError(
            f"{reason} writing {path}: check the folder's permissions or choose another output "
            "folder"
        )
    name = errno.errorcode.get(exc.errno or 0, "")
    return UserError(f"{reason}{f' ({name})' if name else ''} writing {path}")


@contextlib.contextmanager
def writing(path: Path, size: int | None = None) -> Iterator[None]:
    """Inside, an OSError becomes :func:`write_error` for ``path`` (``size``: the bytes written)."""
    try:
        yield
    except OSError as exc:
        raise write_error(Path(path), exc, size) from exc


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@functools.cache
def _file_mode() -> int:
    """The mode ``open()`` gives a new file under this process's umask (0o644 under the usual
    022), read once: mkstemp's temporary files are private (0o600), and a report or run file
    renamed from one would stay unreadable to everyone else."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, rename);
    a failure leaves no temporary file and ``path`` as it was, and is a one-line UserError. The
    file gets the mode a plain ``open()`` would give it."""
    path = Path(path)
    with writing(path, len(data)):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            try:
                if hasattr(os, "fchmod"):  # not on Windows before Python 3.13
                    os.fchmod(fd, _file_mode())
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_text(
        path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    )


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and getattr(obj, "ndim", 0) > 0:  # tensors and arrays
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def checkpoint_bytes(state: dict[str, Any]) -> bytes:
    """``state`` as ``torch.save`` writes it (serialise once, write to several files)."""
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomically ``torch.save`` a checkpoint dictionary."""
    atomic_write_bytes(path, checkpoint_bytes(state))


def _older_checkpoint_globals() -> list[Any]:
    """What checkpoints written before their RNG states and version stamps were plain data hold
    besides tensors and containers: numpy's MT19937 key array and torch's version string. Only
    these are allowed to the unpickler; anything else (code) is refused."""
    import numpy as np
    from torch.torch_version import TorchVersion

    reconstruct = np._core.multiarray._reconstruct if hasattr(np, "_core") else None
    return [g for g in (reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))) if g] + [
        TorchVersion
    ]


def load_checkpoint(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``: tensors,
    containers and numbers only, plus :func:`_older_checkpoint_globals`; a pickle that would run
    code is refused (a one-line UserError) rather than run."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found; train the run first or pick another one")
    try:
        with torch.serialization.safe_globals(_older_checkpoint_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt, foreign, or holding more than weights
        raise UserError(
            f"{path}: not a readable checkpoint of this toolkit ({exc.__class__.__name__}); "
            "it loads with weights_only=True only (no code is run from a checkpoint)"
        ) from exc


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line; a failed write is cut off again (no half line) and is a one-line
    UserError (history files are rewritten on resume)."""
    line = (json.dumps(record, default=_json_default) + "\n").encode("utf-8")
    with writing(path, len(line)):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            end = os.fstat(fd).st_size
            try:
                _write_all(fd, line)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, end)
                raise
        finally:
            os.close(fd)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Atomically replace ``path`` with ``records``, one JSON line each."""
    atomic_write_text(path, "".join(json.dumps(r, default=_json_default) + "\n" for r in records))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
