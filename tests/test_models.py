"""The ResNet-50 family: shapes, gradients into the attention blocks, CBAM pool types, literature
parameter counts, registry errors, a toy learning run and ``cli models``."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from classify.models import MODEL_REGISTRY, RESNET_MODELS, ModelConfig, build_model, model_names
from classify.models.cbam import CBAM, CHANNELS, SPACE, ChannelGate, pool
from classify.models.profile import count_parameters, forward_gflops
from classify.models.se import SqueezeExcite
from classify.names import CBAM_POOL_TYPES
from core.errors import UserError

TINY = 0.125


def tiny(name: str, image_size: int = 32, **kwargs: object) -> nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(name=name, num_classes=3, image_size=image_size, width=TINY, **kwargs)
    return build_model(cfg)


def test_registry_holds_the_resnets_and_their_placements() -> None:
    assert list(RESNET_MODELS[:3]) == ["resnet50", "resnet50-se", "resnet50-cbam"]
    placed = [f"resnet50-{a}-{p}" for a in ("se", "cbam") for p in ("pre", "post", "identity")]
    assert list(RESNET_MODELS[3:]) == placed
    assert model_names()[: len(RESNET_MODELS)] == list(RESNET_MODELS)
    assert list(MODEL_REGISTRY) == model_names()


@pytest.mark.parametrize("name", RESNET_MODELS)
def test_small_stem_shapes_and_cam_layer(name: str) -> None:
    model = tiny(name).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    maps: list[torch.Size] = []
    (target,) = model.cam_target_layers()
    assert target is model.layer4[-1]
    assert model.cam_reshape_transform is None
    hook = target.register_forward_hook(lambda _m, _i, out: maps.append(out.shape))
    with torch.no_grad():
        logits = model(x)
    hook.remove()
    assert logits.shape == (2, 3)
    assert torch.isfinite(logits).all()
    # 3x3 stride-1 stem, no max-pool: 32 px leaves a 4x4 map for Grad-CAM.
    assert maps[0][2:] == (4, 4)
    assert isinstance(model.maxpool, nn.Identity)


@pytest.mark.parametrize("name", RESNET_MODELS)
def test_imagenet_stem_above_64_px(name: str) -> None:
    model = tiny(name, image_size=96).eval()
    assert isinstance(model.maxpool, nn.MaxPool2d)
    assert model.conv1.kernel_size == (7, 7)
    with torch.no_grad():
        features = model.forward_features(torch.zeros(1, 3, 96, 96))
        logits = model(torch.rand(2, 3, 96, 96) * 2 - 1)
    assert features.shape[2:] == (3, 3)  # 96 / 32
    assert logits.shape == (2, 3)
    assert torch.isfinite(logits).all()


def test_stem_can_be_forced() -> None:
    assert isinstance(tiny("resnet50", image_size=64, stem="imagenet").maxpool, nn.MaxPool2d)
    assert isinstance(tiny("resnet50", image_size=128, stem="small").maxpool, nn.Identity)


def test_width_scales_channels_and_keeps_depth() -> None:
    model = tiny("resnet50")
    assert model.conv1.out_channels == 8  # round(64 * 0.125)
    assert model.fc.in_features == 8 * 8 * 4
    assert [len(s) for s in (model.layer1, model.layer2, model.layer3, model.layer4)] == [
        3,
        4,
        6,
        3,
    ]


def test_attention_sits_after_bn3_in_every_block() -> None:
    se, cbam, plain = tiny("resnet50-se"), tiny("resnet50-cbam"), tiny("resnet50")
    blocks = [b for stage in (se.layer1, se.layer2, se.layer3, se.layer4) for b in stage]
    assert len(blocks) == 16
    assert all(isinstance(b.attn, SqueezeExcite) for b in blocks)
    assert all(b.attn.fc1.in_features == b.bn3.num_features for b in blocks)
    assert all(isinstance(b.attn, CBAM) for b in cbam.layer1)
    assert all(isinstance(b.attn, nn.Identity) for b in plain.layer4)


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("resnet50-se", ["attn.fc1.weight", "attn.fc2.weight"]),
        (
            "resnet50-cbam",
            [
                "attn.channel_gate.mlp.0.weight",
                "attn.channel_gate.mlp.2.weight",
                "attn.spatial_gate.conv.weight",
                "attn.spatial_gate.bn.weight",
            ],
        ),
    ],
)
def test_gradients_reach_attention_parameters(name: str, parts: list[str]) -> None:
    model = tiny(name)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 0])).backward()
    grads = dict(model.named_parameters())
    for block in ("layer1.0.", "layer4.2."):
        for part in parts:
            grad = grads[block + part].grad
            assert grad is not None, block + part
            assert torch.isfinite(grad).all()
            assert grad.abs().sum() > 0, block + part


@pytest.mark.parametrize(
    "pool_types",
    [("avg",), ("max",), ("lp",), ("lse",), ("avg", "max"), ("avg", "lp"), CBAM_POOL_TYPES],
)
def test_cbam_pool_types(pool_types: tuple[str, ...]) -> None:
    torch.manual_seed(0)
    gate = CBAM(32, pool_types=pool_types)
    x = torch.randn(2, 32, 5, 5, requires_grad=True)
    out = gate(x)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    out.square().sum().backward()
    assert torch.isfinite(x.grad).all()
    assert gate.channel_gate.mlp[0].weight.grad.abs().sum() > 0


def test_cbam_pools_compute_the_papers_descriptors() -> None:
    x = torch.randn(2, 6, 3, 4)
    flat = x.flatten(2)
    assert pool(x, "avg", SPACE).shape == (2, 6, 1, 1)
    torch.testing.assert_close(pool(x, "avg", SPACE).flatten(1), flat.mean(2))
    torch.testing.assert_close(pool(x, "max", SPACE).flatten(1), flat.max(2).values)
    torch.testing.assert_close(
        pool(x, "lp", SPACE), nn.functional.lp_pool2d(x, 2, (3, 4)), check_stride=False
    )
    torch.testing.assert_close(pool(x, "lse", SPACE).flatten(1), flat.exp().sum(2).log())
    # The spatial gate's channel pools (the authors' ChannelPool: max and mean over C).
    assert pool(x, "max", CHANNELS).shape == (2, 1, 3, 4)
    torch.testing.assert_close(pool(x, "max", CHANNELS), x.max(1, keepdim=True).values)
    torch.testing.assert_close(pool(x, "avg", CHANNELS), x.mean(1, keepdim=True))


def _naive_pool(x: torch.Tensor, kind: str, dims: tuple[int, ...]) -> torch.Tensor:
    ops = {
        "avg": lambda: x.mean(dims, keepdim=True),
        "max": lambda: x.amax(dims, keepdim=True),
        "lp": lambda: x.square().sum(dims, keepdim=True).sqrt(),
        "lse": lambda: torch.logsumexp(x, dims, keepdim=True),
    }
    return ops[kind]()


def _naive_cbam(block: CBAM, x: torch.Tensor) -> torch.Tensor:
    """CBAM written with mean/amax, as in the paper (Woo et al. eq. 1-3)."""
    channel, spatial = block.channel_gate, block.spatial_gate
    assert spatial is not None
    logits = sum(channel.mlp(_naive_pool(x, p, (2, 3)).flatten(1)) for p in channel.pool_types)
    y = x * torch.sigmoid(logits)[:, :, None, None]
    pooled = torch.cat([_naive_pool(y, "max", (1,)), _naive_pool(y, "avg", (1,))], dim=1)
    return y * torch.sigmoid(spatial.bn(spatial.conv(pooled)))


def _naive_se(block: SqueezeExcite, x: torch.Tensor) -> torch.Tensor:
    z = _naive_pool(x, "avg", (2, 3)).flatten(1)
    return x * torch.sigmoid(block.fc2(torch.relu(block.fc1(z))))[:, :, None, None]


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(
    "make",
    [lambda: SqueezeExcite(16), lambda: CBAM(16), lambda: CBAM(16, pool_types=CBAM_POOL_TYPES)],
    ids=["se", "cbam", "cbam-all-pools"],
)
def test_gates_match_the_textbook_composition(
    make: Callable[[], nn.Module], channels_last: bool
) -> None:
    # Values, input and parameter gradients, BatchNorm running stats: all as the textbook version.
    torch.manual_seed(0)
    block = make().double()
    reference = copy.deepcopy(block)
    naive = _naive_se if isinstance(block, SqueezeExcite) else _naive_cbam
    x = torch.randn(3, 16, 5, 6, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    weights = torch.randn(3, 16, 5, 6, dtype=torch.float64)
    out1, out2 = block(x1), naive(reference, x2)
    (out1 * weights).sum().backward()
    (out2 * weights).sum().backward()
    torch.testing.assert_close(out1, out2)
    torch.testing.assert_close(x1.grad, x2.grad)
    for p1, p2 in zip(block.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p1.grad, p2.grad)
    for b1, b2 in zip(block.buffers(), reference.buffers(), strict=True):
        torch.testing.assert_close(b1, b2)


def test_cbam_passes_gradcheck_with_every_pool() -> None:
    torch.manual_seed(0)
    block = CBAM(8, pool_types=CBAM_POOL_TYPES).double()
    x = torch.randn(2, 8, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x,))


def test_channel_gate_sums_shared_mlp_over_pools() -> None:
    torch.manual_seed(0)
    gate = ChannelGate(32, pool_types=("avg", "max"))
    x = torch.randn(3, 32, 4, 4)
    expected = torch.sigmoid(gate.mlp(x.mean((2, 3))) + gate.mlp(x.amax((2, 3))))
    torch.testing.assert_close(gate(x), x * expected[:, :, None, None])


def test_whole_model_with_every_cbam_pool() -> None:
    model = tiny("resnet50-cbam", cbam_pool_types=("avg", "max", "lp", "lse")).eval()
    assert model.layer2[0].attn.channel_gate.pool_types == ("avg", "max", "lp", "lse")
    with torch.no_grad():
        assert torch.isfinite(model(torch.rand(2, 3, 32, 32) * 2 - 1)).all()


@pytest.mark.parametrize(
    ("name", "expected"),
    [("resnet50", 25_557_032), ("resnet50-se", 28_088_024), ("resnet50-cbam", 28_089_624)],
)
def test_imagenet_parameter_counts_match_literature(name: str, expected: int) -> None:
    # 25.56M / 28.09M / 28.09M (He et al.; Hu et al.; Woo et al.). The meta device skips allocation.
    with torch.device("meta"):
        model = build_model(ModelConfig(name=name, num_classes=1000, image_size=224))
    assert count_parameters(model) == expected


def test_forward_gflops_counts_multiply_add_as_two() -> None:
    with torch.device("meta"):
        model = build_model(ModelConfig(name="resnet50", num_classes=1000, image_size=224))
    assert forward_gflops(model, 224) == pytest.approx(8.18, abs=0.01)  # 4.09 GMACs
    assert forward_gflops(model, 224, batch=2) == pytest.approx(2 * 8.178, abs=0.01)
    assert model.training  # mode restored


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"name": "resnet18"}, "resnet50, resnet50-se, resnet50-cbam"),
        ({"width": 0.0}, "width"),
        ({"num_classes": 0}, "num_classes"),
        ({"stem": "huge"}, "auto, small, imagenet"),
        ({"cbam_pool_types": ("avg", "median")}, "avg, max, lp, lse"),
        ({"cbam_pool_types": ()}, "CBAM pool types"),
    ],
)
def test_bad_config_is_a_user_error(changes: dict[str, object], fragment: str) -> None:
    with pytest.raises(UserError, match=fragment):
        build_model(ModelConfig(**changes))


def test_config_round_trips_through_json_types() -> None:
    cfg = ModelConfig(name="resnet50-cbam", width=0.25, cbam_pool_types=("avg", "lse"))
    data = cfg.to_dict()
    assert data["cbam_pool_types"] == ["avg", "lse"]
    assert ModelConfig.from_dict(data) == cfg
    assert ModelConfig.from_dict({"name": "resnet50-se"}) == ModelConfig(name="resnet50-se")


def _toy_set(per_class: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes: red horizontal stripes, green vertical stripes, blue checkerboard, + noise."""
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    patterns = [(yy // 4) % 2, (xx // 4) % 2, (yy // 4 + xx // 4) % 2]
    images, labels = [], []
    for label, pattern in enumerate(patterns):
        image = torch.full((per_class, 3, 32, 32), -0.5)
        image[:, label] += pattern.float()
        image += 0.3 * torch.randn(per_class, 3, 32, 32, generator=generator)
        images.append(image.clamp(-1, 1))
        labels.append(torch.full((per_class,), label))
    return torch.cat(images), torch.cat(labels)


def _recalibrate_batchnorm(model: nn.Module, images: torch.Tensor) -> None:
    """Replace BN running stats (which lag far behind after a dozen steps) by exact training-set
    statistics, so eval mode measures what the weights learned."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        model(images)
    model.eval()


def test_tiny_cbam_model_learns_a_separable_toy_set() -> None:
    generator = torch.Generator().manual_seed(0)
    train_x, train_y = _toy_set(8, generator)
    test_x, test_y = _toy_set(10, generator)
    model = tiny("resnet50-cbam")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(15):
        batch = torch.randperm(len(train_y), generator=generator)[:12]
        loss = nn.functional.cross_entropy(model(train_x[batch]), train_y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    _recalibrate_batchnorm(model, train_x)
    with torch.no_grad():
        accuracy = (model(test_x).argmax(1) == test_y).float().mean().item()
    assert sum(losses[-3:]) / 3 < 0.5 * losses[0]
    assert accuracy >= 0.8  # chance is 1/3; held-out images, eval mode


def test_cli_models_lists_every_model() -> None:
    from cli import app

    result = CliRunner().invoke(app, ["models", "--image-size", "32", "--width", "0.25"])
    assert result.exit_code == 0, result.output
    for name in model_names():
        assert name in result.output
    assert "4x4" in result.output and "8x8" in result.output  # ResNet layer4, ViT token grid


def test_cli_models_rejects_bad_width() -> None:
    from cli import app

    result = CliRunner().invoke(app, ["models", "--width", "-1"])
    assert result.exit_code == 2
    assert "width" in result.output


@pytest.mark.parametrize("kind", CBAM_POOL_TYPES)
def test_pools_agree_across_memory_formats(kind: str) -> None:
    x = torch.randn(2, 8, 5, 6)
    nhwc = x.contiguous(memory_format=torch.channels_last)
    for over in (SPACE, CHANNELS):
        torch.testing.assert_close(pool(nhwc, kind, over), pool(x, kind, over), check_stride=False)


def test_lp_pool_gradient_is_finite_on_an_all_zero_channel() -> None:
    # lp_pool2d's pow(1/2) would give NaN here; the gate uses the norm's zero subgradient.
    block = CBAM(8, pool_types=("lp",))
    x = torch.randn(2, 8, 3, 3)
    x[:, 0] = 0
    x.requires_grad_()
    block(x).square().sum().backward()
    assert torch.isfinite(x.grad).all()
