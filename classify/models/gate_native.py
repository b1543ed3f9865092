"""Compiled CPU passes for the pooled gates of :mod:`classify.models.gating`.

``gate_kernels.c`` does each activation-sized pass of ``x * scale(pool(x)) (+ residual)`` and its
backward as one loop (pooling with first-index argmax, the broadcast products, the max gradients'
scatter) for float32 NCHW-contiguous CPU tensors, where PyTorch takes several ops and temporaries
for each. It is built on first use with the system C compiler (``$CC``, else ``cc``; about a second)
into the user cache folder, keyed by the source, flags, compiler and CPU, and loaded with
ctypes, so no build step, headers or torch extension toolchain are needed. Threads: OpenMP, which
resolves to the libgomp torch has loaded (the same soname), so the kernels share torch's pool and
take ``torch.get_num_threads()`` threads.

Where no compiler is found or the build fails, :func:`kernels` returns None (with one warning) and
the gates run their PyTorch path: same values, slower on CPU. ``SHOEGAN_NATIVE_GATES=0`` turns the
kernels off. CUDA, other dtypes and layouts always take the PyTorch path.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor

from classify.models.pooling import SPACE
from core.cachedir import user_cache_dir

NATIVE_ENV = "SHOEGAN_NATIVE_GATES"  # "0": never use the compiled kernels
SOURCE = Path(__file__).with_name("gate_kernels.c")
FLAGS = ("-O3", "-march=native", "-std=c11", "-fopenmp", "-fPIC", "-shared")

_P, _I64, _INT = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
_SIGNATURES = {
    "cbam_spatial_pool": (_P, _P, _I64, _I64, _I64, _P, _P, _P, _INT),
    "cbam_out": (_P, _P, _P, _P, _P, _I64, _I64, _I64, _INT),
    "cbam_spatial_dot": (_P, _P, _P, _P, _I64, _I64, _I64, _INT),
    "cbam_channel_dot": (_P, _P, _P, _P, _P, _P, _P, _I64, _I64, _I64, _INT),
    "cbam_dx": (_P, _P, _P, _P, _P, _P, _P, _P, _P, _P, _I64, _I64, _I64, _INT),
    "space_pool": (_P, _I64, _I64, _P, _P, _P, _INT),
    "space_scale": (_P, _P, _P, _P, _I64, _I64, _INT),
    "space_dot": (_P, _P, _P, _I64, _I64, _INT),
    "space_dx": (_P, _P, _P, _P, _P, _P, _I64, _I64, _INT),
    "channels_pool": (_P, _I64, _I64, _I64, _P, _P, _P, _INT),
    "channels_scale": (_P, _P, _P, _P, _I64, _I64, _I64, _INT),
    "channels_dot": (_P, _P, _P, _I64, _I64, _I64, _INT),
    "channels_dx": (_P, _P, _P, _P, _P, _P, _I64, _I64, _I64, _INT),
}


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


class GateKernels:
    """The compiled passes, on tensors. ``over`` is ``"space"`` (one value per (n, c), pooled over
    H x W) or ``"channels"`` (one value per (n, h, w), pooled over C); inputs must pass
    :func:`kernels_for`; scales and gradients of descriptors are made contiguous float32 here."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        for name, argtypes in _SIGNATURES.items():
            getattr(lib, name).argtypes = argtypes
            getattr(lib, name).restype = None

    @staticmethod
    def _dims(x: Tensor, over: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(the shape of one descriptor with dims kept, the sizes the C functions take)."""
        n, c, h, w = x.shape
        if over == SPACE:
            return (n, c, 1, 1), (n * c, h * w)
        return (n, 1, h, w), (n, c, h * w)

    def pool(
        self, x: Tensor, over: str, with_max: bool
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """(mean, max or None, first index of the max or None), in one pass over ``x``."""
        shape, sizes = self._dims(x, over)
        mean = x.new_empty(shape)
        top = x.new_empty(shape) if with_max else None
        arg = torch.empty(shape, dtype=torch.int32) if with_max else None
        call = self._lib.space_pool if over == SPACE else self._lib.channels_pool
        call(_ptr(x), *sizes, _ptr(mean), _ptr(top), _ptr(arg), _threads())
        return mean, top, arg

    def scale(self, x: Tensor, scale: Tensor, residual: Tensor | None, over: str) -> Tensor:
        """``x * scale (+ residual)``."""
        _, sizes = self._dims(x, over)
        out = torch.empty_like(x)
        scale = scale.to(torch.float32).contiguous()
        call = self._lib.space_scale if over == SPACE else self._lib.channels_scale
        call(_ptr(x), _ptr(scale), _ptr(residual), _ptr(out), *sizes, _threads())
        return out

    def dot(self, grad: Tensor, x: Tensor, over: str) -> Tensor:
        """``(grad * x)`` summed over what ``over`` pools, dims kept."""
        shape, sizes = self._dims(x, over)
        out = x.new_empty(shape)
        call = self._lib.space_dot if over == SPACE else self._lib.channels_dot
        call(_ptr(grad), _ptr(x), _ptr(out), *sizes, _threads())
        return out

    def dx(
        self,
        grad: Tensor,
        scale: Tensor,
        dmean: Tensor | None,
        dmax: Tensor | None,
        arg: Tensor | None,
        over: str,
    ) -> Tensor:
        """``grad * scale + dmean`` (``dmean`` already divided by the pooled count), plus ``dmax``
        at each maximum's first index."""
        _, sizes = self._dims(grad, over)
        out = torch.empty_like(grad)
        scale, dmean, dmax = (
            None if t is None else t.to(torch.float32).contiguous() for t in (scale, dmean, dmax)
        )
        call = self._lib.space_dx if over == SPACE else self._lib.channels_dx
        call(
            _ptr(grad),
            _ptr(scale),
            _ptr(dmean),
            _ptr(dmax),
            _ptr(arg),
            _ptr(out),
            *sizes,
            _threads(),
        )
        return out

    # CBAM's two gates in one go, ``y = x * cs`` (the channel gate's output) never stored: ``cs``
    # is the channel scale (N x C x 1 x 1), ``ss`` the spatial one (N x 1 x H x W); the spatial
    # gate's descriptor gradients (``Spatial``) enter the channel dot and ``dx`` directly, where
    # running the gates in turn would write ``dy``.

    def cbam_spatial_pool(self, x: Tensor, cs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(mean, max, first index of the max) over the channels of ``x * cs``."""
        n, c, h, w = x.shape
        mean, top = x.new_empty(n, 1, h, w), x.new_empty(n, 1, h, w)
        arg = torch.empty(n, 1, h, w, dtype=torch.int32)
        call = self._lib.cbam_spatial_pool
        call(_ptr(x), _ptr(cs), n, c, h * w, _ptr(mean), _ptr(top), _ptr(arg), _threads())
        return mean, top, arg

    def cbam_out(self, x: Tensor, cs: Tensor, ss: Tensor, residual: Tensor | None) -> Tensor:
        """``(x * cs) * ss (+ residual)``."""
        n, c, h, w = x.shape
        out = torch.empty_like(x)
        args = (_ptr(x), _ptr(cs), _ptr(ss), _ptr(residual), _ptr(out), n, c, h * w, _threads())
        self._lib.cbam_out(*args)
        return out

    def cbam_spatial_dot(self, grad: Tensor, x: Tensor, cs: Tensor) -> Tensor:
        """``sum over C of grad * (x * cs)``, N x 1 x H x W."""
        n, c, h, w = x.shape
        out = x.new_empty(n, 1, h, w)
        self._lib.cbam_spatial_dot(
            _ptr(grad), _ptr(x), _ptr(cs), _ptr(out), n, c, h * w, _threads()
        )
        return out

    def cbam_channel_dot(self, grad: Tensor, x: Tensor, ss: Tensor, spatial: Spatial) -> Tensor:
        """``sum over H x W of dy * x``, N x C x 1 x 1, ``dy`` the spatial gate's input gradient."""
        n, c, h, w = x.shape
        out = x.new_empty(n, c, 1, 1)
        dmean, dmax, arg = spatial
        sizes = (n, c, h * w, _threads())
        call = self._lib.cbam_channel_dot
        call(_ptr(grad), _ptr(x), _ptr(ss), _ptr(dmean), _ptr(dmax), _ptr(arg), _ptr(out), *sizes)
        return out

    def cbam_dx(
        self,
        grad: Tensor,
        ss: Tensor,
        spatial: Spatial,
        cs: Tensor,
        channel: tuple[Tensor | None, Tensor | None, Tensor | None],
    ) -> Tensor:
        """``dy * cs + cmean``, plus ``cmax`` at each channel maximum's first index (``channel``:
        the channel gate's ``(dmean / (H W) or None, dmax or None, arg or None)``)."""
        n, c, h, w = grad.shape
        out = torch.empty_like(grad)
        cmean, cmax, carg = channel
        pointers = [_ptr(t) for t in (grad, ss, *spatial, cs, cmean, cmax, carg, out)]
        self._lib.cbam_dx(*pointers, n, c, h * w, _threads())
        return out


Spatial = tuple[Tensor, Tensor, Tensor]  # the spatial gate's (dmean / C, dmax, arg)


def _threads() -> int:
    return torch.get_num_threads()


def kernels_for(*tensors: Tensor | None) -> GateKernels | None:
    """The compiled kernels if they take these tensors (None entries are skipped): float32, on the
    CPU, NCHW-contiguous, and the kernels available; else None."""
    takes = all(
        t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous()
        for t in tensors
        if t is not None
    )
    return kernels() if takes else None


def kernels() -> GateKernels | None:
    """The compiled kernels, or None (turned off by ``SHOEGAN_NATIVE_GATES=0``, or unavailable)."""
    return None if _turned_off() else _load()


def _turned_off() -> bool:
    return os.environ.get(NATIVE_ENV, "1") == "0"


def describe() -> str:
    """One line: which path the gates' CPU passes take here, and why."""
    if _turned_off():
        return f"PyTorch ops ({NATIVE_ENV}=0)"
    try:
        path = build()
    except (OSError, RuntimeError) as error:
        return f"PyTorch ops (compiled kernels unavailable: {error})"
    return f"compiled kernels ({path})"


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")


def _cpu() -> str:
    """What ``-march=native`` compiles for: the CPU's model and feature flags (Linux), else the
    platform's processor string, so a cache folder shared by machines with other CPUs (a network
    home) never hands one of them instructions it lacks."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    wanted = ("model name", "flags", "Features", "CPU part")
    return "\n".join(dict.fromkeys(line for line in text.splitlines() if line.startswith(wanted)))


def _key(compiler: str) -> str:
    version = subprocess.run(
        [compiler, "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[:1]
    parts = [SOURCE.read_text(), " ".join(FLAGS), *version, platform.machine(), _cpu()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def build(folder: Path | None = None) -> Path:
    """Compile ``gate_kernels.c`` (once per source, flags, compiler and CPU) and return the
    shared library's path; raises RuntimeError with the compiler's message when it cannot."""
    compiler = _compiler()
    if compiler is None:
        raise RuntimeError("no C compiler found (install gcc, or set CC)")
    target = (folder or user_cache_dir() / "kernels") / f"gate_kernels-{_key(compiler)}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        done = subprocess.run(
            [compiler, *FLAGS, str(SOURCE), "-o", tmp], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{compiler} failed: {done.stderr.strip().splitlines()[-1:]}")
        os.replace(tmp, target)  # atomic: concurrent builders (DDP ranks) each rename a whole file
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


@functools.cache
def _load() -> GateKernels | None:
    try:
        return GateKernels(ctypes.CDLL(str(build())))
    except (OSError, RuntimeError) as error:
        warnings.warn(
            f"attention gates: compiled CPU kernels unavailable ({error}); using the PyTorch path "
            f"(same results, slower on CPU). Set {NATIVE_ENV}=0 to silence this.",
            stacklevel=2,
        )
        return None
