"""Attention placements (Hu et al., "Squeeze-and-Excitation Networks", TPAMI 2019, Fig. 5: standard,
PRE, POST, Identity) and the gates: every placement against a block written from the paper, SE and
CBAM against the papers' equations (forward and backward, every CBAM pooling, ties), parameter
counts, config compatibility and ``cli models``."""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import partial

import pytest
import torch
from torch import Tensor, nn
from typer.testing import CliRunner

from classify.models import ModelConfig, build_model
from classify.models.attention import create_attention
from classify.models.cbam import CBAM, SPACE, pool
from classify.models.placement import PLACEMENTS
from classify.models.profile import count_parameters
from classify.models.resnet import Bottleneck
from classify.models.se import SqueezeExcite
from classify.names import ATTENTION_POSITIONS, CBAM_POOL_TYPES, MODEL_NAMES, RESNET_VARIANTS
from core.errors import UserError

PLACED = [name for name, (attention, _) in RESNET_VARIANTS.items() if attention is not None]


# --- the un-optimised reference, written from the papers ----------------------------------------


def ref_pool(x: Tensor, kind: str, dims: tuple[int, ...]) -> Tensor:
    """Descriptors as the papers and the CBAM authors' code compute them (max: one maximum, the
    first, gets the gradient, as max_pool2d and torch.max give it)."""
    if kind == "avg":
        return x.mean(dims, keepdim=True)
    if kind == "max" and dims == (1,):
        return x.max(1, keepdim=True).values
    if kind == "max":
        return x.flatten(2).max(2, keepdim=True).values.unsqueeze(-1)
    if kind == "lp":
        return x.square().sum(dims, keepdim=True).sqrt()
    return torch.logsumexp(x, dims, keepdim=True)


def ref_se(block: SqueezeExcite, x: Tensor) -> Tensor:
    """Hu et al. eq. 2-4: x * sigmoid(W2 relu(W1 z)), z the channel means."""
    z = x.mean((2, 3))
    return x * torch.sigmoid(block.fc2(torch.relu(block.fc1(z))))[:, :, None, None]


def ref_cbam(block: CBAM, x: Tensor) -> Tensor:
    """Woo et al. eq. 1-3: M_c = sigmoid(sum over poolings of MLP(pool(x))), then
    M_s = sigmoid(BN(conv7x7([max_c, mean_c]))), one MLP call per pooling as in the authors' loop."""
    channel = block.channel_gate
    logits = sum(channel.mlp(ref_pool(x, p, (2, 3)).flatten(1)) for p in channel.pool_types)
    y = x * torch.sigmoid(logits)[:, :, None, None]
    spatial = block.spatial_gate
    if spatial is None:
        return y
    pooled = torch.cat([ref_pool(y, "max", (1,)), ref_pool(y, "avg", (1,))], dim=1)
    return y * torch.sigmoid(spatial.bn(spatial.conv(pooled)))


def reference_gate(block: nn.Module, x: Tensor) -> Tensor:
    return ref_se(block, x) if isinstance(block, SqueezeExcite) else ref_cbam(block, x)


def reference_block(block: Bottleneck, x: Tensor) -> Tensor:
    """Fig. 5 of the TPAMI paper, composed from the block's own layers: F the residual branch, P
    the shortcut (projection where the shape changes), A the attention block."""
    relu = torch.relu

    def residual(t: Tensor) -> Tensor:
        t = relu(block.bn1(block.conv1(t)))
        t = relu(block.bn2(block.conv2(t)))
        return block.bn3(block.conv3(t))

    def attend(t: Tensor) -> Tensor:
        return reference_gate(block.attn, t)

    shortcut = block.downsample
    return {
        "standard": lambda: relu(attend(residual(x)) + shortcut(x)),
        "pre": lambda: relu(residual(attend(x)) + shortcut(x)),
        "post": lambda: attend(relu(residual(x) + shortcut(x))),
        "identity": lambda: relu(residual(x) + attend(shortcut(x))),
    }[block.attention_position]()


def grads_of(module: nn.Module, *inputs: Tensor) -> list[Tensor]:
    return [t.grad for t in inputs] + [p.grad for p in module.parameters()]  # type: ignore[misc]


# --- placements ----------------------------------------------------------------------------------


def test_placement_registry_is_the_name_list() -> None:
    assert tuple(PLACEMENTS) == ATTENTION_POSITIONS
    positions = {position for _, position in RESNET_VARIANTS.values()}
    assert positions == set(ATTENTION_POSITIONS)
    assert len(PLACED) == 2 * len(ATTENTION_POSITIONS)  # SE and CBAM, each in all four places


@pytest.mark.parametrize("attention", ["se", "cbam"])
@pytest.mark.parametrize("position", ATTENTION_POSITIONS)
@pytest.mark.parametrize(("in_channels", "stride"), [(16, 2), (32, 1)], ids=["down", "same"])
def test_bottleneck_matches_the_papers_block(
    attention: str, position: str, in_channels: int, stride: int
) -> None:
    torch.manual_seed(0)
    attn = partial(create_attention, attention)
    block = Bottleneck(in_channels, 8, stride, attn, position).double()
    twin = copy.deepcopy(block)
    x = torch.randn(2, in_channels, 8, 8, dtype=torch.float64)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out1, out2 = block(x1), reference_block(twin, x2)
    assert out1.shape == (2, 32, 8 // stride, 8 // stride)
    weights = torch.randn_like(out1)
    (out1 * weights).sum().backward()
    (out2 * weights).sum().backward()
    torch.testing.assert_close(out1, out2)
    for g1, g2 in zip(grads_of(block, x1), grads_of(twin, x2), strict=True):
        torch.testing.assert_close(g1, g2)
    # PRE gates the block input (its in channels), the others a tensor with the out channels.
    gate_in = (
        block.attn.fc1.in_features
        if attention == "se"
        else block.attn.channel_gate.mlp[0].in_features
    )
    assert gate_in == (in_channels if position == "pre" else 32)


@pytest.mark.parametrize("name", PLACED)
def test_every_placed_model_builds_learns_and_reaches_its_gates(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, num_classes=3, image_size=32, width=0.125))
    assert {b.attention_position for b in model.modules() if isinstance(b, Bottleneck)} == {
        RESNET_VARIANTS[name][1]
    }
    logits = model(torch.rand(4, 3, 32, 32) * 2 - 1)
    assert logits.shape == (4, 3) and torch.isfinite(logits).all()
    nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 0])).backward()
    for block in (model.layer1[0], model.layer4[-1]):
        grads = [p.grad for p in block.attn.parameters()]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
        assert all(g.abs().sum() > 0 for g in grads)  # type: ignore[union-attr]


# ImageNet ResNet-50 (1000 classes, 224 px, ImageNet stem, width 1). SE adds 2C^2/16 + C/16 + C per
# gate; standard, POST and Identity gates all see the block's out channels (256 ... 2048), so they
# have the standard count (28.09M, the SE paper's Table). PRE gates see the block's input, which
# differs in each stage's first block (64, 256, 512, 1024 instead of 256, 512, 1024, 2048):
# 7,884 + 24,848 + 98,848 + 394,304 = 525,884 fewer parameters for SE (27.56M). CBAM's spatial gate
# (98 conv weights + 2 BN) does not depend on channels, so CBAM's counts shift the same way.
IMAGENET_PARAMETERS = {
    "resnet50": 25_557_032,
    "resnet50-se": 28_088_024,
    "resnet50-cbam": 28_089_624,
    "resnet50-se-pre": 28_088_024 - 525_884,
    "resnet50-se-post": 28_088_024,
    "resnet50-se-identity": 28_088_024,
    "resnet50-cbam-pre": 28_089_624 - 525_884,
    "resnet50-cbam-post": 28_089_624,
    "resnet50-cbam-identity": 28_089_624,
}


@pytest.mark.parametrize(("name", "expected"), IMAGENET_PARAMETERS.items())
def test_imagenet_parameter_counts(name: str, expected: int) -> None:
    with torch.device("meta"):
        model = build_model(ModelConfig(name=name, num_classes=1000, image_size=224))
    assert count_parameters(model) == expected


# --- the gates against the reference -------------------------------------------------------------

GATES: dict[str, Callable[[], nn.Module]] = {
    "se": lambda: SqueezeExcite(32),
    **{f"cbam-{p}": partial(CBAM, 32, pool_types=(p,)) for p in CBAM_POOL_TYPES},
    "cbam-avg-max": lambda: CBAM(32),
    "cbam-all": partial(CBAM, 32, pool_types=CBAM_POOL_TYPES),
    "channel-only": partial(CBAM, 32, spatial=False),
}


def assert_within(actual: Tensor, expected: Tensor, tol: float) -> None:
    """Equal within ``tol`` of the tensor's scale (max(1, largest magnitude)): float32 gradients
    such as the 7x7 conv's sum thousands of products, so both implementations sit ~1e-6 of their
    magnitude from the float64 value, and an absolute 1e-5 would only measure that magnitude."""
    scale = max(1.0, expected.abs().max().item())
    error = (actual.double() - expected.double()).abs().max().item()
    assert error <= tol * scale, f"off by {error:.2e}, allowed {tol * scale:.2e}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("size", [32, 4])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("gate", GATES)
def test_gates_equal_the_reference(
    gate: str, channels_last: bool, size: int, dtype: torch.dtype
) -> None:
    # Forward, input / parameter gradients and BN running statistics, on random inputs: within
    # 1e-5 in float32, within 1e-10 in float64 (where rounding no longer hides).
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    torch.manual_seed(0)
    block = GATES[gate]().to(dtype)
    twin = copy.deepcopy(block)
    x = torch.randn(2, 32, size, size, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out1, out2 = block(x1), reference_gate(twin, x2)
    weights = torch.randn(out1.shape, dtype=dtype)
    (out1 * weights).sum().backward()
    (out2 * weights).sum().backward()
    assert_within(out1, out2, tol)
    for g1, g2 in zip(grads_of(block, x1), grads_of(twin, x2), strict=True):
        assert_within(g1, g2, tol)
    for b1, b2 in zip(block.buffers(), twin.buffers(), strict=True):  # BN running statistics
        assert_within(b1, b2, tol)
    with torch.no_grad():  # eval-time calls give the same values
        assert_within(block(x), out1, tol)


@pytest.mark.parametrize("size", [32, 4])
def test_ties_send_the_gradient_to_the_first_maximum(size: int) -> None:
    # Post-ReLU inputs (what a PRE gate sees) tie at zero: whole dead channels and positions.
    torch.manual_seed(0)
    block = CBAM(32).double()
    twin = copy.deepcopy(block)
    x = torch.relu(torch.randn(2, 32, size, size, dtype=torch.float64) - 1.5)
    x[:, :4] = 0
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    block(x1).sum().backward()
    reference_gate(twin, x2).sum().backward()
    for g1, g2 in zip(grads_of(block, x1), grads_of(twin, x2), strict=True):
        torch.testing.assert_close(g1, g2)
    # The whole gradient of a tied maximum goes to one position (amax would split it).
    dead = torch.zeros(1, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    pool(dead, "max", SPACE).sum().backward()
    assert dead.grad is not None and dead.grad.flatten().tolist() == [1.0] + [0.0] * 8


@pytest.mark.parametrize("size", [8, 3])
def test_gates_pass_gradcheck(size: int) -> None:
    torch.manual_seed(0)
    for block in (SqueezeExcite(4).double(), CBAM(4, pool_types=CBAM_POOL_TYPES).double()):
        x = torch.randn(2, 4, size, size, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(block, (x,))


def test_gates_run_under_autocast() -> None:
    # The CUDA path trains under autocast; bfloat16 on CPU exercises the same dtype handling.
    torch.manual_seed(0)
    for block in (SqueezeExcite(16), CBAM(16, pool_types=CBAM_POOL_TYPES)):
        x = torch.randn(2, 16, 8, 8, requires_grad=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = block(x.to(torch.bfloat16))
        out.float().sum().backward()
        assert x.grad is not None and x.grad.dtype == torch.float32
        assert torch.isfinite(x.grad).all()


# --- configuration and CLI -----------------------------------------------------------------------


def test_name_and_position_always_agree() -> None:
    assert ModelConfig(name="resnet50-se-pre").attention_position == "pre"
    assert ModelConfig(name="resnet50-cbam", attention_position="identity").name == (
        "resnet50-cbam-identity"
    )
    cfg = ModelConfig(name="resnet50-se", attention_position="post", width=0.25)
    assert cfg.to_dict()["attention_position"] == "post"
    assert (
        ModelConfig.from_dict(cfg.to_dict())
        == cfg
        == ModelConfig(name="resnet50-se-post", width=0.25)
    )


def test_checkpoints_from_before_the_field_load_as_standard() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(name="resnet50-cbam", width=0.125, image_size=32)
    old = {k: v for k, v in cfg.to_dict().items() if k != "attention_position"}
    loaded = ModelConfig.from_dict(old)
    assert loaded == cfg and loaded.attention_position == "standard"
    build_model(loaded).load_state_dict(build_model(cfg).state_dict())  # same keys, same shapes


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"name": "resnet50-se-pre", "attention_position": "post"}, "contradicts"),
        ({"name": "resnet50", "attention_position": "pre"}, "no attention block"),
        ({"name": "vit-tiny", "attention_position": "identity"}, "no attention block"),
        ({"name": "resnet50-se", "attention_position": "middle"}, "standard, pre, post, identity"),
    ],
)
def test_impossible_positions_are_user_errors(changes: dict[str, str], fragment: str) -> None:
    with pytest.raises(UserError, match=fragment):
        build_model(ModelConfig(**changes))


def test_cli_models_lists_the_placed_models() -> None:
    from cli import app
    from commands.options import comma_list

    result = CliRunner().invoke(app, ["models", "--image-size", "32", "--width", "0.25"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line for line in result.output.splitlines() if "resnet50" in line}
    assert set(PLACED) <= set(rows)
    assert "1,608,627" in rows["resnet50-se-pre"]  # PRE: narrower gates in 4 blocks
    assert "1,641,791" in rows["resnet50-se-identity"] and "1,641,791" in rows["resnet50-se"]
    # train-all's and the pipeline's --models take them (the same registry-key check).
    assert comma_list(MODEL_NAMES)("resnet50-se-pre,resnet50-cbam-identity")
