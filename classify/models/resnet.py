"""ResNet-50 (He et al. 2016, "Deep Residual Learning for Image Recognition", arXiv:1512.03385) with
an attention slot on every residual branch.

Layout as torchvision's ``resnet50`` (v1.5: the stride sits on the 3x3 conv of each bottleneck;
layers [3, 4, 6, 3], expansion 4). The attention block, built by a factory taking the channel count,
sits by default after the last BatchNorm (bn3) and before the residual addition, where the SE and
CBAM papers (and the CBAM authors' code) put it; ``attention_position`` moves it to one of the SE
paper's other integration strategies (:mod:`classify.models.placement`). With no attention the
block is torchvision's Bottleneck.

Stems: ``"imagenet"`` is 7x7 stride-2 conv + 3x3 stride-2 max-pool (input /4); ``"small"`` is a 3x3
stride-1 conv with no max-pool, so a 32 px input still leaves a 4x4 map at layer4 for Grad-CAM (the
ImageNet stem would leave 1x1). ``"auto"`` picks small for inputs up to SMALL_STEM_MAX_SIZE px.

Width: the base channel count is ``make_divisible(64 * width, 8)`` (nearest multiple of 8, at least
8, never more than 10% below the exact value); stages use base x 1, 2, 4, 8 and blocks expand x4.
Depth and block counts never change.

Parameter and buffer names are torchvision's (``conv1``, ``bn1``, ``layerN.M.{conv,bn}K``,
``layerN.M.downsample.{0,1}``, ``fc``), so a torchvision ``resnet50`` state dict loads unchanged;
the attention blocks add ``layerN.M.attn.*`` (:mod:`classify.models.transfer`). ``input_norm``
(:mod:`classify.models.input_norm`) runs first, before the stem.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from classify.models.placement import get_placement
from classify.names import STEMS

SMALL_STEM_MAX_SIZE = 64
RESNET50_LAYERS = (3, 4, 6, 3)

AttentionFactory = Callable[[int], nn.Module]


def make_divisible(value: float, divisor: int = 8, round_limit: float = 0.9) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (>= divisor), not dropping more than
    ``1 - round_limit`` below it (the rule timm and MobileNet use for channel counts)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < round_limit * value:
        rounded += divisor
    return rounded


def resolve_stem(stem: str, image_size: int) -> str:
    """``auto`` -> ``small`` for inputs <= SMALL_STEM_MAX_SIZE px, else ``imagenet``."""
    if stem not in STEMS:
        raise ValueError(f"stem {stem!r}: choose one of {', '.join(STEMS)}")
    if stem == "auto":
        return "small" if image_size <= SMALL_STEM_MAX_SIZE else "imagenet"
    return stem


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (stride here) -> 1x1 expand x4, plus the shortcut, add + ReLU; the
    attention block sits where ``attention_position`` says (default: on the branch, before the
    addition)."""

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        attn_layer: AttentionFactory | None = None,
        attention_position: str = "standard",
    ) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        placement = get_placement(attention_position)
        if attn_layer is None and attention_position != "standard":
            raise ValueError(f"attention position {attention_position!r} needs an attention block")
        self.attention_position = attention_position
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        gate_channels = placement.gate_channels(in_channels, out_channels)
        self.attn = attn_layer(gate_channels) if attn_layer is not None else nn.Identity()
        # Gates that take the shortcut fuse their final product with the residual addition.
        self.fused_residual = getattr(self.attn, "fuses_residual", False)
        # In-place ReLU and add save one activation-sized allocation each (torchvision does the same;
        # BatchNorm's and the gates' backward do not need the tensors overwritten here).
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def residual(self, x: Tensor) -> Tensor:
        """The residual branch F(x): conv1-bn1-relu, conv2-bn2-relu, conv3-bn3."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))

    def gate(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        """``attn(x)``, plus ``residual`` when given, in one fused pass where the gate offers one.

        Without attention (``nn.Identity``) the addition happens in place on ``x``, which must then
        be a fresh intermediate (bn3's output: the only case, since only ``standard`` allows no
        attention)."""
        if residual is None:
            return self.attn(x)
        if self.fused_residual:
            return self.attn(x, residual)  # gate(x) * x + residual in one pass
        out = self.attn(x)
        out += residual
        return out

    def forward(self, x: Tensor) -> Tensor:
        return get_placement(self.attention_position).forward(self, x)


class ResNet(nn.Module):
    """Bottleneck ResNet on inputs in [-1, 1] (N x 3 x H x W), returning class logits.

    ``attn_layer`` builds every block's attention from a channel count (None: plain ResNet);
    ``attention_position`` places it (``standard | pre | post | identity``, Hu et al. TPAMI Fig. 5).
    """

    # Grad-CAM hook: CNN feature maps need no reshaping (a ViT would set a token->map function).
    cam_reshape_transform: Callable[[Tensor], Tensor] | None = None
    head_name = "fc"  # the classifier layer (replaced when a transfer changes the classes)

    def __init__(
        self,
        layers: Sequence[int] = RESNET50_LAYERS,
        num_classes: int = 1000,
        width: float = 1.0,
        stem: str = "imagenet",
        attn_layer: AttentionFactory | None = None,
        zero_init_residual: bool = False,
        attention_position: str = "standard",
        input_norm: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.input_norm = input_norm if input_norm is not None else nn.Identity()
        if stem not in ("small", "imagenet"):
            raise ValueError(f"stem {stem!r}: resolve 'auto' with resolve_stem() first")
        base = make_divisible(64 * width)
        self.stem_type = stem
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(3, base, 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(3, base, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)

        in_channels = base
        stages = []
        for index, blocks in enumerate(layers):
            planes = base * 2**index
            stride = 1 if index == 0 else 2
            stage = []
            for block in range(blocks):
                stride_here = stride if block == 0 else 1
                stage.append(
                    Bottleneck(in_channels, planes, stride_here, attn_layer, attention_position)
                )
                in_channels = planes * Bottleneck.expansion
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = in_channels
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        self.reset_parameters(zero_init_residual)

    def reset_parameters(self, zero_init_residual: bool = False) -> None:
        """torchvision's init: Kaiming-normal (fan_out, ReLU) convs, BatchNorm weight 1 and bias 0,
        Linear layers (fc, attention MLPs) at PyTorch's default. ``zero_init_residual`` zeroes each
        bn3 weight so every block starts as identity (Goyal et al. 2017); off by default, as in
        torchvision. (The CBAM authors also zero the spatial gate's BN weight; we do not, so the
        spatial conv receives gradient from the first step.)"""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, Bottleneck):
                    nn.init.zeros_(module.bn3.weight)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(self.input_norm(x)))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward(self, x: Tensor) -> Tensor:
        features = torch.flatten(self.global_pool(self.forward_features(x)), 1)
        return self.fc(features)

    def cam_target_layers(self) -> list[nn.Module]:
        """Layers whose activations Grad-CAM should use: the last bottleneck of layer4."""
        return [self.layer4[-1]]
