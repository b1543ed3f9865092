"""Weight files: torchvision's ImageNet weights through its own weights API, and local state dicts.

ImageNet weights are torchvision's ``WeightsEnum`` entries (``ResNet50_Weights.IMAGENET1K_V2``,
``ViT_B_16_Weights.IMAGENET1K_V1``): their URL, file name, ``meta`` and ``transforms()``.
:func:`fetch_state_dict` calls ``weights.get_state_dict(progress=, check_hash=True,
weights_only=True)``, i.e. ``torch.hub.load_state_dict_from_url``: a file already in
``$TORCH_HOME/hub/checkpoints/`` (``torch.hub.get_dir()``) is read as it is; a missing one is
downloaded there, written to a temporary file first and checked against the SHA-256 prefix in its
name (torchvision's naming rule) before it takes its place, so a broken download never lands in the
cache. The download runs under a socket timeout (:data:`DOWNLOAD_TIMEOUT_S` per blocking read), so
a machine without a network gets a one-line :class:`UserError` naming the file, the folder it
belongs in and the URL to fetch it from, not a traceback or a hang.

:func:`read_state_dict` reads a local file (``--weights``) with ``torch.load(weights_only=True)``:
a pickle holding code or other objects is refused by PyTorch's restricted unpickler, and anything
that is not a flat ``{name: tensor}`` mapping is a one-line error too.
"""

from __future__ import annotations

import contextlib
import pickle
import re
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor
from torchvision.models import WeightsEnum, get_weight

from core.errors import UserError

DOWNLOAD_TIMEOUT_S = 30.0

# The torchvision architecture behind each of our layouts, and its default ImageNet weights.
DEFAULT_WEIGHTS: dict[str, str] = {
    "resnet50": "ResNet50_Weights.IMAGENET1K_V2",
    "vit_b_16": "ViT_B_16_Weights.IMAGENET1K_V1",
}


def imagenet_weights(arch: str) -> WeightsEnum:
    """The default ImageNet weights of torchvision architecture ``arch`` (a DEFAULT_WEIGHTS key)."""
    return get_weight(DEFAULT_WEIGHTS[arch])


def weights_name(weights: WeightsEnum) -> str:
    """``ResNet50_Weights.IMAGENET1K_V2``: the enum's own spelling."""
    return f"{type(weights).__name__}.{weights.name}"


def checkpoints_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (read at call time, as torch.hub does)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_file(weights: WeightsEnum) -> Path:
    """Where torch.hub keeps ``weights``: the URL's file name in :func:`checkpoints_dir`."""
    return checkpoints_dir() / Path(urlparse(weights.url).path).name


@contextlib.contextmanager
def socket_timeout(seconds: float) -> Iterator[None]:
    """A default socket timeout inside (torch.hub's urlopen sets none), the old one after."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def fetch_state_dict(
    weights: WeightsEnum, *, progress: bool = True, timeout: float = DOWNLOAD_TIMEOUT_S
) -> dict[str, Tensor]:
    """``weights``' state dict (CPU tensors) from the torch.hub cache, downloaded and hash-checked
    into it when missing; a one-line :class:`UserError` when it cannot be had."""
    path = cached_file(weights)
    try:
        with socket_timeout(timeout):
            state = weights.get_state_dict(
                progress=progress, check_hash=True, weights_only=True, map_location="cpu"
            )
    except Exception as exc:  # no network, a timeout, a cut download, a bad hash, a bad file
        if not path.is_file():  # torch.hub removes a failed download's temporary file
            raise UserError(_missing(weights, path, _reason(exc))) from exc
        raise UserError(
            f"{path}: not a readable weights file ({_reason(exc)}); delete it so that it is "
            f"downloaded again from {weights.url}"
        ) from exc
    return _as_state_dict(state, path, weights_name(weights), f"download {weights.url} again")


def _missing(weights: WeightsEnum, path: Path, reason: str) -> str:
    return (
        f"{weights_name(weights)}: {path.name} is not in {path.parent} and could not be downloaded "
        f"({reason}); download {weights.url} into {path.parent} (or point $TORCH_HOME at a folder "
        "whose hub/checkpoints holds it) and run again, or pass the file with --weights"
    )


def _refused(exc: pickle.UnpicklingError) -> str:
    """What torch's weights-only unpickler refused, e.g. ``GLOBAL builtins.print``."""
    found = re.search(r"Unsupported global[^.\n]*", str(exc))
    return found.group(0) if found else "UnpicklingError"


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = str(reason).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def read_state_dict(path: Path, option: str = "--weights") -> dict[str, Tensor]:
    """A ``{name: tensor}`` state dict from ``path``, loaded with ``weights_only=True``."""
    path = Path(path)
    hint = f"save one with torch.save(model.state_dict(), {path.name!r})"
    if not path.is_file():
        raise UserError(f"{option} {path}: file not found; pass a torchvision-layout state dict")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):  # no pickle at all (text, a broken file)
            raise UserError(f"{option} {path}: not a readable PyTorch file; {hint}") from exc
        raise UserError(
            f"{option} {path}: holds pickled objects other than tensors, which weights-only "
            f"loading refuses ({_refused(exc)}); {hint}"
        ) from exc
    except Exception as exc:  # a truncated archive, a text file, another format
        raise UserError(
            f"{option} {path}: not a readable PyTorch file ({_reason(exc)[:120]}); {hint}"
        ) from exc
    return _as_state_dict(state, path, option, hint)


def _as_state_dict(state: object, path: Path, option: str, hint: str) -> dict[str, Tensor]:
    """``state`` if it is a non-empty ``{name: tensor}`` mapping, else a one-line UserError."""
    if not isinstance(state, Mapping):
        raise UserError(
            f"{option} {path}: holds a {type(state).__name__}, not a state dict; {hint}"
        )
    if "format" in state and "model" in state:
        raise UserError(
            f"{option} {path}: a checkpoint of this toolkit ({state.get('format')}), not a "
            "torchvision state dict; pass its run folder to --init-from"
        )
    odd = [str(k) for k, v in state.items() if not (isinstance(k, str) and torch.is_tensor(v))]
    if odd or not state:
        what = f"entries that are not tensors (e.g. {odd[0]!r})" if odd else "no tensors"
        raise UserError(f"{option} {path}: not a state dict: it holds {what}; {hint}")
    return dict(state)
