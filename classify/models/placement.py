"""Where a residual unit's attention block sits: the four SE integration strategies of Hu et al.,
"Squeeze-and-Excitation Networks" (TPAMI 2019, arXiv:1709.01507v4, Sec. 6.5 "Integration strategy",
Fig. 5 and its ImageNet table). With ``F`` the residual branch (conv1 ... bn3), ``P`` the shortcut
(identity, or the 1x1 projection + BN of a downsampling block) and ``A`` the attention block:

- ``standard``: ``relu(A(F(x)) + P(x))`` — on the residual branch before the addition (the SE and
  CBAM papers' design, and the authors' code for both).
- ``pre``: ``relu(F(A(x)) + P(x))`` — "the SE unit moved before the residual unit": the gate
  rescales the branch's input; the shortcut still carries the un-gated ``x``.
- ``post``: ``A(relu(F(x) + P(x)))`` — "moved after the summation with the identity branch (after
  ReLU)": the gate rescales the whole stream, shortcut included.
- ``identity``: ``relu(F(x) + A(P(x)))`` — "on the identity connection, in parallel to the residual
  unit".

Downsampling blocks (the first block of each stage: a stride and/or a channel change, so ``P`` is
a projection) need a choice the paper's figure (drawn for an identity shortcut) leaves open:

- ``pre`` gates the block input ``x``, so its gate has the block's *in* channels (64, 256, 512,
  1024 in ResNet-50's first blocks) and works at the input resolution. That is the literal "before
  the residual unit"; the alternative (gating after conv1) would be a different design, SE inside
  the branch, which the paper studies separately (its "SE_3x3" variant).
- ``identity`` gates ``P(x)``, after the projection: the gate sees exactly the tensor that is added
  to ``F(x)``, with the block's *out* channels at the output resolution, as on every identity
  shortcut. Gating ``x`` before the projection instead would let the 1x1 projection mix the
  gated channels, so the gate would not act "on the identity connection" at all.

So ``post`` and ``identity`` gates have the standard gate's channel count in every block (ImageNet
ResNet-50 + SE: 28,088,024 parameters, as standard), while ``pre`` gates are narrower in the four
downsampling blocks: 27,562,140 for SE-PRE, 525,884 fewer (tests/test_attention_placement.py).

Every placement works with every registered attention block: they only need ``A`` to map a tensor
to one of the same shape. CBAM gets all four too: the placement is defined by the residual unit,
not the gate, and CBAM's authors only ever tried the standard one, so the same four-way comparison
is the experiment to run. One caveat for ``post`` and ``identity`` with CBAM: at initialisation a
sigmoid gate scales by ~0.5, and CBAM's two gates compound to ~0.25 per block on the path they sit
on (for ``post`` the whole stream, 16 blocks), a stronger damping of the shortcut than SE's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from torch import Tensor, nn


class ResidualUnit(Protocol):
    """What a placement needs from a bottleneck block."""

    downsample: nn.Module
    relu: nn.Module

    def residual(self, x: Tensor) -> Tensor: ...

    def gate(self, x: Tensor, residual: Tensor | None = None) -> Tensor: ...


def _standard(block: ResidualUnit, x: Tensor) -> Tensor:
    shortcut = block.downsample(x)
    return block.relu(block.gate(block.residual(x), shortcut))


def _pre(block: ResidualUnit, x: Tensor) -> Tensor:
    shortcut = block.downsample(x)
    out = block.residual(block.gate(x))
    out += shortcut
    return block.relu(out)


def _post(block: ResidualUnit, x: Tensor) -> Tensor:
    out = block.residual(x)
    out += block.downsample(x)
    return block.gate(block.relu(out))


def _identity(block: ResidualUnit, x: Tensor) -> Tensor:
    out = block.residual(x)
    return block.relu(block.gate(block.downsample(x), out))


@dataclass(frozen=True)
class Placement:
    """One integration strategy: the gate's channel count and the block's forward pass."""

    gate_channels: Callable[[int, int], int]  # (block in channels, out channels) -> gate channels
    forward: Callable[[ResidualUnit, Tensor], Tensor]


PLACEMENTS: dict[str, Placement] = {
    "standard": Placement(lambda _in, out: out, _standard),
    "pre": Placement(lambda in_channels, _out: in_channels, _pre),
    "post": Placement(lambda _in, out: out, _post),
    "identity": Placement(lambda _in, out: out, _identity),
}


def get_placement(position: str) -> Placement:
    """The :class:`Placement` registered as ``position``."""
    if position not in PLACEMENTS:
        raise ValueError(f"attention position {position!r}: choose one of {', '.join(PLACEMENTS)}")
    return PLACEMENTS[position]
