"""Auxiliary BatchNorm for a second image distribution (``--synthetic-bn separate``).

AdvProp (Xie et al. 2020, "Adversarial Examples Improve Image Recognition", CVPR, sec. 3.3) keeps
one set of BatchNorm statistics for clean images and an auxiliary set for adversarial ones, as the
two have different feature statistics and one set mixing them serves neither; only the main set is
kept for inference. Here the second distribution is a GAN's images: real images (and evaluation)
go through the main BatchNorm, synthetic images through the auxiliary one; every other weight is
shared.

:class:`DualBatchNorm2d` *is* the main BatchNorm (its own parameters and buffers, under the keys a
plain model has) with the auxiliary twin as a child ``aux`` (own affine parameters and running
statistics, initialised as a copy). While :func:`auxiliary_split` is active, the first ``split``
rows of a batch are normalised by the main BatchNorm and the rest by ``aux``, so a training step is
one forward pass over ``cat(real, synthetic)`` (what DistributedDataParallel expects); otherwise it
is plain BatchNorm. :func:`split_state` separates the auxiliary entries from a state dict, so a
checkpoint's model weights stay a standard state dict that loads into a plain :func:`build_model`
(evaluation, Grad-CAM, prediction), the auxiliary ones saved beside them for resuming.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn


class DualBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d with an auxiliary twin for the rows from ``split`` on (module docstring)."""

    def __init__(self, num_features: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(num_features, *args, **kwargs)
        self.aux = nn.BatchNorm2d(num_features, *args, **kwargs)
        self.split: int | None = None  # set by auxiliary_split

    @classmethod
    def from_batchnorm(cls, norm: nn.BatchNorm2d) -> DualBatchNorm2d:
        """``norm`` itself (parameters, statistics, device, dtype) plus a copy of it as ``aux``."""
        dual = copy.deepcopy(norm)
        dual.__class__ = cls
        dual.aux = copy.deepcopy(norm)
        dual.split = None
        return dual

    def forward(self, input: Tensor) -> Tensor:
        split = self.split
        if split is None or split >= input.shape[0]:
            return super().forward(input)
        if split <= 0:
            return self.aux(input)
        return torch.cat([super().forward(input[:split]), self.aux(input[split:])])


def add_auxiliary_batchnorm(model: nn.Module) -> nn.Module:
    """Replace every plain ``nn.BatchNorm2d`` of ``model`` by a :class:`DualBatchNorm2d`, in place
    (parameter names unchanged, ``.aux.`` ones added); returns ``model``."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.BatchNorm2d:
                setattr(parent, name, DualBatchNorm2d.from_batchnorm(child))
    return model


def _aux_prefixes(model: nn.Module) -> tuple[str, ...]:
    return tuple(
        f"{name}.aux." if name else "aux."
        for name, module in model.named_modules()
        if isinstance(module, DualBatchNorm2d)
    )


def split_state(model: nn.Module) -> tuple[dict[str, Any], dict[str, Any]]:
    """``model.state_dict()`` as (the standard entries, the auxiliary BatchNorms' entries); the
    first is the whole state dict of a model without :class:`DualBatchNorm2d`."""
    prefixes = _aux_prefixes(model)
    state = model.state_dict()
    main = {k: v for k, v in state.items() if not k.startswith(prefixes)}
    aux = {k: v for k, v in state.items() if k.startswith(prefixes)}
    return main, aux


def load_split_state(
    model: nn.Module, main: Mapping[str, Any], aux: Mapping[str, Any] | None
) -> None:
    """Load what :func:`split_state` gave (strictly: every key of ``model`` must be there)."""
    model.load_state_dict({**main, **(aux or {})})


@contextlib.contextmanager
def auxiliary_split(model: nn.Module, split: int) -> Iterator[None]:
    """Inside: the rows from ``split`` on go through the auxiliary BatchNorms of ``model``."""
    norms = [m for m in model.modules() if isinstance(m, DualBatchNorm2d)]
    for norm in norms:
        norm.split = split
    try:
        yield
    finally:
        for norm in norms:
            norm.split = None
