"""Model size and cost: parameter count and forward FLOPs."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def forward_gflops(model: nn.Module, image_size: int, batch: int = 1) -> float:
    """GFLOPs (FLOPs / 1e9) of one eval-mode forward pass over ``batch`` RGB images of
    ``image_size`` px, as torch.utils.flop_counter.FlopCounterMode reports them.

    That counter counts a multiply-add as 2 FLOPs and only counts matrix products and convolutions
    (not BatchNorm, activations, pooling or the attention gates' elementwise work), so ResNet-50 at
    224 px gives ~8.2, twice the "4.1 GFLOPs" (multiply-adds) quoted in the literature.
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    x = torch.zeros(batch, 3, image_size, image_size, device=device, dtype=dtype)
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / 1e9
