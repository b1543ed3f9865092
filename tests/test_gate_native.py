"""The compiled gate kernels (classify/models/gate_native.py, gate_kernels.c): each kernel against
torch on the same tensors, whole gates against their PyTorch path (forward, every gradient, BN
statistics, on odd shapes and ties), threads, and the fallbacks (turned off, no compiler)."""

from __future__ import annotations

import copy
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from classify.models import gate_native, gating
from classify.models.attention import CBAM, ChannelGate, SpatialGate, SqueezeExcite
from classify.models.cbam_fused import fused_cbam

needs_compiler = pytest.mark.skipif(
    gate_native._compiler() is None, reason="no C compiler on this machine"
)


@pytest.fixture
def kernels() -> gate_native.GateKernels:
    built = gate_native.kernels()
    assert built is not None, "a C compiler is on this machine, so the kernels must build"
    return built


@pytest.fixture
def torch_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[bool], None]]:
    """``use_torch(True)`` routes the gates through their PyTorch path, ``False`` back."""

    def use_torch(on: bool) -> None:
        monkeypatch.setenv(gate_native.NATIVE_ENV, "0" if on else "1")

    yield use_torch


# Shapes: the quick preset's and 64 px's maps, rows shorter than 8 and longer than 256 positions,
# positions that are no multiple of the lanes (5 x 7, 17 x 17), and channels for the first max.
SHAPES = [
    (2, 32, 32, 32),
    (2, 64, 8, 8),
    (3, 16, 4, 4),
    (2, 40, 2, 2),
    (2, 24, 5, 7),
    (1, 8, 17, 17),
]


def ties(shape: tuple[int, ...]) -> Tensor:
    """Post-ReLU values with many equal maxima: rounded, clamped, whole channels zero."""
    x = torch.randn(shape).mul(1.5).round().clamp(min=0)
    x[:, :3] = 0
    return x


@needs_compiler
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("data", ["random", "ties"])
def test_each_kernel_equals_torch(
    shape: tuple[int, ...], data: str, kernels: gate_native.GateKernels
) -> None:
    torch.manual_seed(0)
    x = torch.randn(shape) if data == "random" else ties(shape)
    grad, residual = torch.randn(shape), torch.randn(shape)
    for over, dims in (("space", (2, 3)), ("channels", (1,))):
        mean, top, arg = kernels.pool(x, over, with_max=True)
        torch.testing.assert_close(mean, x.mean(dims, keepdim=True))
        if over == "space":
            expected = x.flatten(2).max(2)
            values, index = (t.view(mean.shape) for t in expected)
        else:
            values, index = x.max(1, keepdim=True)
        assert torch.equal(top, values) and torch.equal(arg.long(), index)  # the first maximum
        scale = torch.rand(mean.shape)
        torch.testing.assert_close(kernels.scale(x, scale, None, over), x * scale)
        torch.testing.assert_close(kernels.scale(x, scale, residual, over), residual + x * scale)
        torch.testing.assert_close(kernels.dot(grad, x, over), (grad * x).sum(dims, keepdim=True))
        dmean, dmax = torch.randn(mean.shape), torch.randn(mean.shape)
        expected_dx = grad * scale + dmean
        if over == "channels":
            expected_dx.scatter_add_(1, index, dmax)
        else:
            n, c = shape[:2]
            expected_dx.view(n, c, -1).scatter_add_(2, index.view(n, c, 1), dmax.view(n, c, 1))
        got = kernels.dx(grad, scale, dmean, dmax, arg, over)
        torch.testing.assert_close(got, expected_dx)
        torch.testing.assert_close(kernels.dx(grad, scale, None, None, None, over), grad * scale)


GATES: dict[str, Callable[[int], nn.Module]] = {
    "se": SqueezeExcite,
    "cbam": CBAM,
    "cbam-max-avg-order": lambda c: CBAM(c, pool_types=("max", "avg")),
    "cbam-channel-only": lambda c: CBAM(c, spatial=False),
    "channel-gate-avg": lambda c: ChannelGate(c, pool_types=("avg",)),
    "channel-gate-max": lambda c: ChannelGate(c, pool_types=("max",)),
    "spatial-gate": lambda c: SpatialGate(),
}


def run_gate(block: nn.Module, x: Tensor, residual: Tensor | None, weights: Tensor) -> list[Tensor]:
    """Output, gradients of the input, residual and parameters, and the buffers afterwards."""
    x = x.clone().requires_grad_()
    r = None if residual is None else residual.clone().requires_grad_()
    out = block(x) if r is None else block(x, r)
    (out * weights).sum().backward()
    grads = [x.grad] + ([] if r is None else [r.grad])
    params = [p.grad for p in block.parameters()]
    return [out.detach(), *grads, *params, *(b.clone() for b in block.buffers())]


def assert_near(actual: Tensor, expected: Tensor) -> None:
    """Within 1e-5 of the tensor's scale: sums (the 7x7 conv's weight gradient adds thousands of
    products) run in another order on the two paths."""
    scale = max(1.0, expected.abs().max().item())
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * scale)


@needs_compiler
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
@pytest.mark.parametrize("gate", GATES)
def test_native_gates_equal_the_torch_path(
    gate: str,
    residual: bool,
    shape: tuple[int, ...],
    torch_path: Callable[[bool], None],
    kernels: gate_native.GateKernels,
) -> None:
    # Within 1e-5 of the tensor's scale (sums run in another order), forward and backward.
    torch.manual_seed(0)
    block = GATES[gate](shape[1])
    twin = copy.deepcopy(block)
    x, r, weights = torch.randn(shape), torch.randn(shape), torch.randn(shape)
    got = run_gate(block, x, r if residual else None, weights)
    torch_path(True)
    expected = run_gate(twin, x, r if residual else None, weights)
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert_near(a, b)


@needs_compiler
@pytest.mark.parametrize("shape", SHAPES[:3], ids=str)
def test_ties_send_the_gradient_to_the_first_maximum(
    shape: tuple[int, ...], torch_path: Callable[[bool], None], kernels: gate_native.GateKernels
) -> None:
    torch.manual_seed(0)
    block = CBAM(shape[1])
    twin = copy.deepcopy(block)
    x, weights = ties(shape), torch.randn(shape)
    got = run_gate(block, x, None, weights)
    torch_path(True)
    for a, b in zip(got, run_gate(twin, x, None, weights), strict=True):
        assert_near(a, b)  # a gradient sent to another maximum would be off by O(1)


KERNELS = ["pool", "scale", "dot", "dx"]
CBAM_KERNELS = ["cbam_spatial_pool", "cbam_out", "cbam_spatial_dot", "cbam_channel_dot", "cbam_dx"]
# Which kernels one forward and backward calls: SE and a lone gate go through the per-gate
# Function; CBAM with mean/max channel poolings through the fused one (cbam_fused.py), whose
# channel pooling is the per-gate ``pool``; CBAM with another pooling runs its gates in turn.
CALLS = {
    "se": KERNELS,
    "cbam": ["pool", *CBAM_KERNELS],
    "cbam-channel-only": KERNELS,
    "spatial-gate": KERNELS,
}


@needs_compiler
@pytest.mark.parametrize("gate", CALLS)
def test_the_native_path_is_taken_and_threads_agree(
    gate: str, kernels: gate_native.GateKernels, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Functions call the kernels for float32 NCHW CPU tensors; two threads give what one
    # does (maps above the kernels' one-thread size, so the parallel loops run).
    calls: list[str] = []
    for name in KERNELS + CBAM_KERNELS:
        original = getattr(gate_native.GateKernels, name)

        def spy(self: object, *args: object, _f: Callable = original, _n: str = name) -> object:
            calls.append(_n)
            return _f(self, *args)

        monkeypatch.setattr(gate_native.GateKernels, name, spy)
    torch.manual_seed(0)
    block = GATES[gate](64)
    twin = copy.deepcopy(block)
    x, weights = torch.randn(4, 64, 32, 32), torch.randn(4, 64, 32, 32)
    one = run_gate(block, x, None, weights)
    assert sorted(set(calls)) == sorted(CALLS[gate])
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = run_gate(twin, x, None, weights)
    finally:
        torch.set_num_threads(before)
    for a, b in zip(one, two, strict=True):
        assert_near(a, b)  # torch's own conv and MLP sum in another order with two threads


def test_cbam_with_other_poolings_runs_its_gates_in_turn() -> None:
    block = CBAM(8, pool_types=("avg", "lp"))
    assert fused_cbam(torch.randn(2, 8, 8, 8, requires_grad=True), None, *block.children()) is None


def test_other_dtypes_layouts_and_pools_take_the_torch_path() -> None:
    x = torch.randn(2, 8, 4, 4)
    assert gating._native(("avg", "lp"), x, None) is None
    assert gating._native(("avg",), x.double(), None) is None
    assert gating._native(("avg",), x.contiguous(memory_format=torch.channels_last), None) is None
    assert gating._native(("avg",), x, x.double()) is None


def test_turned_off_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gate_native.NATIVE_ENV, "0")
    assert gate_native.kernels() is None
    assert gating._native(("avg",), torch.randn(2, 8, 4, 4), None) is None


def test_a_failing_compiler_falls_back_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A compiler that fails: build() says so, and the gates train on the PyTorch path.
    false = shutil.which("false")
    assert false is not None
    monkeypatch.setenv("CC", false)
    monkeypatch.setenv("SHOEGAN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(gate_native, "_compiler", lambda: false)
    with pytest.raises(RuntimeError, match="failed"):
        gate_native.build()
    gate_native._load.cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert gate_native.kernels() is None
            assert gate_native.kernels() is None  # cached: no second build, no second warning
        assert len(caught) == 1 and "PyTorch path" in str(caught[0].message)
        block = SqueezeExcite(8)
        x = torch.randn(2, 8, 8, 8, requires_grad=True)
        block(x).sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
    finally:
        gate_native._load.cache_clear()


def test_no_compiler_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gate_native, "_compiler", lambda: None)
    with pytest.raises(RuntimeError, match="no C compiler"):
        gate_native.build()


@needs_compiler
def test_the_build_is_cached_per_source(tmp_path: Path) -> None:
    first = gate_native.build(tmp_path)
    stamp = first.stat().st_mtime_ns
    assert gate_native.build(tmp_path) == first and first.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary left behind


def test_cli_models_says_which_path_the_gates_take(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from cli import app

    monkeypatch.setenv(gate_native.NATIVE_ENV, "0")
    result = CliRunner().invoke(app, ["models", "--image-size", "32"])
    assert result.exit_code == 0, result.output
    assert "PyTorch ops (SHOEGAN_NATIVE_GATES=0)" in " ".join(result.output.split())
    monkeypatch.setattr(gate_native, "_compiler", lambda: None)
    monkeypatch.delenv(gate_native.NATIVE_ENV)
    assert gate_native.describe().startswith("PyTorch ops (compiled kernels unavailable: no C")


@needs_compiler
def test_another_cpu_gets_its_own_build(monkeypatch: pytest.MonkeyPatch) -> None:
    # -march=native: a cache shared with a machine whose CPU differs must not hand it our build.
    compiler = gate_native._compiler()
    assert compiler is not None
    here = gate_native._key(compiler)
    monkeypatch.setattr(gate_native, "_cpu", lambda: "model name : another CPU\nflags : sse2")
    assert gate_native._key(compiler) != here


@needs_compiler
def test_fused_cbam_with_frozen_gate_networks_equals_the_torch_path(
    torch_path: Callable[[bool], None], kernels: gate_native.GateKernels
) -> None:
    # Fine-tuning with frozen attention: only the input and the residual get gradients.
    torch.manual_seed(0)
    block = CBAM(16)
    for p in block.spatial_gate.parameters():
        p.requires_grad_(False)
    twin = copy.deepcopy(block)
    x, r, weights = torch.randn(2, 16, 8, 8), torch.randn(2, 16, 8, 8), torch.randn(2, 16, 8, 8)
    got = run_gate(block, x, r, weights)
    assert [p.grad for p in block.spatial_gate.parameters()] == [None, None, None]
    torch_path(True)
    for a, b in zip(got, run_gate(twin, x, r, weights), strict=True):
        if a is None or b is None:
            assert a is None and b is None
        else:
            assert_near(a, b)


@needs_compiler
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_nan_inputs_keep_every_index_in_range(
    shape: tuple[int, ...], kernels: gate_native.GateKernels
) -> None:
    # A diverged run feeds NaN: the outputs may be NaN, but the argmax the backward writes at
    # must stay inside its row (an index out of range would write outside dx).
    x = torch.randn(shape)
    x[0] = float("nan")
    x[-1, :, 0] = float("nan")
    for over, size in (("space", shape[2] * shape[3]), ("channels", shape[1])):
        _, _, arg = kernels.pool(x, over, with_max=True)
        assert arg is not None and int(arg.min()) >= 0 and int(arg.max()) < size
    n, c, h, w = shape
    _, _, arg = kernels.cbam_spatial_pool(x, torch.rand(n, c, 1, 1))
    assert int(arg.min()) >= 0 and int(arg.max()) < c
