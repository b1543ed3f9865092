"""Loading another model's weights into one of ours: torchvision's ImageNet weights, a local
torchvision-layout file, or a run of ours (:mod:`classify.training.init_weights` picks the source).

Layouts. Our ResNet-50 names every tensor as torchvision's ``resnet50`` does (Bottleneck v1.5,
layers [3, 4, 6, 3]: ``conv1``, ``bn1``, ``layerN.M.{conv,bn}{1,2,3}``, ``layerN.M.downsample.
{0,1}``, ``fc``), so its state dict maps onto ours key for key, at width 1.0 and with the ImageNet
stem (7x7 stride-2 conv + max-pool) that the weights were trained with; ``vit-b16`` is torchvision's
``vit_b_16`` itself. A transfer checks every key and shape first and refuses a file of another
architecture in one line; a ViT's position embeddings are resized to the model's token grid with
torchvision's own ``interpolate_embeddings`` (bicubic, as for its fine-tuning at other resolutions).

The classifier head (``fc`` / ``heads.head``) is replaced, i.e. left at its fresh initialisation,
when it does not fit: another number of classes (ImageNet's 1000 against a dataset's few), or, from a
run of ours, other class names.

New modules. The SE and CBAM gates of ``resnet50-se``, ``resnet50-cbam`` and their placed variants
have no counterpart in torchvision's ResNet-50, so they keep their own initialisation (PyTorch's
default for their linear layers, Kaiming-normal for CBAM's 7x7 conv, BatchNorm weight 1 / bias 0),
while every backbone tensor comes from the weights unchanged. Hu et al. (2018, "Squeeze-and-
Excitation Networks", Sec. 6) train SE-ResNets from scratch and publish no recipe for inserting new
gates into a trained network, so we follow the usual fine-tuning practice of loading the backbone
non-strictly and initialising the modules it lacks as for training from scratch (timm's
``load_pretrained`` with ``strict=False``; torchvision's detection models around an ImageNet
backbone). Such a gate starts near ``sigmoid(0) = 0.5`` per channel (CBAM's two gates near 0.25), so
each residual branch (for ``post``: the whole stream) is damped at first and the pretrained features
shift until the gates learn; ``--freeze-backbone-epochs`` lets the gates and the head settle on
frozen backbone features before everything trains.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from torch import Tensor, nn
from torchvision.models.vision_transformer import interpolate_embeddings

from classify.models.config import ModelConfig
from classify.names import RESNET_VARIANTS
from core.errors import UserError

VIT_B16 = "vit-b16"
VIT_B16_SHAPE = {"patch_size": 16, "vit_depth": 12, "vit_heads": 12}
POSITIONS = "encoder.pos_embedding"


def torchvision_arch(name: str) -> str | None:
    """The torchvision architecture whose state dict loads into model ``name`` (None: none)."""
    if name in RESNET_VARIANTS:
        return "resnet50"
    return "vit_b_16" if name == VIT_B16 else None


def check_torchvision_config(cfg: ModelConfig, option: str) -> str:
    """Refuse a model configuration torchvision's weights cannot fill; return the architecture."""
    arch = torchvision_arch(cfg.name)
    if arch is None:
        raise UserError(
            f"{option}: {cfg.name} has no torchvision counterpart with ImageNet weights; use "
            f"--model resnet50 (or an SE / CBAM variant of it) or {VIT_B16}"
        )
    if cfg.width != 1.0:
        raise UserError(
            f"{option}: torchvision's {arch} has width 1.0, not --width {cfg.width:g}; drop --width"
        )
    if arch == "vit_b_16":
        for field, size in VIT_B16_SHAPE.items():
            value = getattr(cfg, field)
            if value not in (0, size):
                option_name = "--" + field.replace("_", "-")
                raise UserError(
                    f"{option}: ViT-B/16 has {option_name} {size}, not {value}; drop {option_name}"
                )
    return arch


def is_gate_key(key: str) -> bool:
    """A state-dict key of an attention gate (``layerN.M.attn.*``): new to a torchvision ResNet."""
    return "attn" in key.split(".")


@dataclass(frozen=True)
class Transfer:
    """What a transfer did: our keys taken from the source, and those left at their init."""

    loaded: tuple[str, ...]
    new: tuple[str, ...]  # the gates, and the head when it was replaced
    head_replaced: bool


def resize_positions(
    model: nn.Module, state: Mapping[str, Tensor], source: str
) -> dict[str, Tensor]:
    """``state`` with a ViT's position embeddings resized to ``model``'s token grid."""
    state = dict(state)
    ours = model.state_dict().get(POSITIONS)
    theirs = state.get(POSITIONS)
    if ours is None or theirs is None or theirs.shape == ours.shape:
        return state
    if theirs.ndim != 3 or theirs.shape[-1] != ours.shape[-1]:
        return state  # a wrong shape: reported with the other keys
    try:
        return dict(interpolate_embeddings(model.image_size, model.patch_size, state))
    except ValueError as exc:
        raise UserError(f"{source}: cannot resize {POSITIONS} ({exc})") from exc


def transfer_weights(
    model: nn.Module,
    state: Mapping[str, Tensor],
    *,
    source: str,
    layout: str,
    is_new: Callable[[str], bool] = lambda key: False,
    replace_head: bool | None = None,
    load: bool = True,
) -> Transfer:
    """Copy ``state`` (described as ``source``, a ``layout`` state dict) into ``model`` (with
    ``load=False`` only check that it would fit: ``model`` may then live on the meta device).

    Every key of ``model`` for which ``is_new`` is false must be in ``state`` with its shape (a
    missing BatchNorm ``num_batches_tracked`` aside), and ``state`` may hold no other key; else a
    one-line :class:`UserError`. The head (``model.head_name``) is replaced when ``replace_head``
    says so, or, left None, when its shapes differ."""
    ours = model.state_dict()
    state = resize_positions(model, state, source)
    expected = [k for k in ours if not is_new(k)]
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unknown = [k for k in state if k not in ours or is_new(k)]
    if missing or unknown:
        parts = [f"{len(missing)} of its tensors missing, e.g. {missing[0]!r}"] if missing else []
        parts += [f"{len(unknown)} unknown, e.g. {unknown[0]!r}"] if unknown else []
        raise UserError(
            f"{source}: not a {layout} state dict ({'; '.join(parts)}); pass a {layout} file, or "
            "the --model it was saved from"
        )
    head = f"{model.head_name}."
    if replace_head is None:
        replace_head = any(state[k].shape != ours[k].shape for k in expected if k.startswith(head))
    take = [k for k in expected if k in state and not (replace_head and k.startswith(head))]
    wrong = [k for k in take if state[k].shape != ours[k].shape]
    if wrong:
        k = wrong[0]
        raise UserError(
            f"{source}: {k} has shape {tuple(state[k].shape)} where {layout} has "
            f"{tuple(ours[k].shape)} ({len(wrong)} such tensors); pass a {layout} file"
        )
    if load:
        model.load_state_dict({k: state[k] for k in take}, strict=False)
    new = tuple(k for k in ours if is_new(k) or (replace_head and k.startswith(head)))
    return Transfer(loaded=tuple(take), new=new, head_replaced=replace_head)
