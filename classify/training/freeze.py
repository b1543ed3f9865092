"""``--freeze-backbone-epochs K``: the first K epochs train only the head (and the modules new to
a transferred model), then everything trains.

Training a new head on frozen pretrained features before fine-tuning the whole network keeps the
random head's first, large gradients out of the backbone (Kumar et al. 2022, "Fine-Tuning can
Distort Pretrained Features and Underperform Out-of-Distribution", ICLR: LP-FT, a linear probe
first). Frozen means unchanged in every tensor: the backbone's parameters get no update (their
gradients are dropped before each optimizer step, so neither the step nor weight decay touches
them; one process skips computing them at all) and its BatchNorm layers run in eval mode, so their
running statistics stay those of the weights. The learning-rate schedule is the run's, unchanged.

Which parameters are the backbone: every one except the classifier head (``model.head_name``) and,
for torchvision weights, the attention gates they do not hold (:func:`~classify.models.transfer.
is_gate_key`), which start from their own initialisation and so train from the first epoch. From a
run of ours (``--init-from``) every tensor was trained, so only the head trains.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn
from torch.optim import Optimizer

from classify.models.transfer import is_gate_key


def backbone_parameters(model: nn.Module, keep_gates_trainable: bool) -> list[nn.Parameter]:
    """The parameters the frozen epochs leave unchanged (module docstring)."""
    head = f"{model.head_name}."

    def trains(name: str) -> bool:
        return name.startswith(head) or (keep_gates_trainable and is_gate_key(name))

    return [p for name, p in model.named_parameters() if not trains(name)]


class BackboneFreeze:
    """Freezes ``frozen`` (parameters of ``model``) during epochs 1..``epochs``.

    :meth:`attach` hooks the optimizer once; :meth:`start_epoch` is called after ``model.train()``
    at the start of every epoch. ``compute_grads``: keep ``requires_grad`` on while frozen, as
    DistributedDataParallel expects a gradient for every parameter it was built with."""

    def __init__(
        self,
        model: nn.Module,
        frozen: list[nn.Parameter],
        epochs: int,
        compute_grads: bool = False,
    ) -> None:
        self.frozen, self.epochs, self.compute_grads = frozen, epochs, compute_grads
        self.active = False
        ids = {id(p) for p in frozen}
        # Leaf modules whose every parameter is frozen (BatchNorm above all) run in eval mode.
        self.modules = [
            m
            for m in model.modules()
            if list(m.parameters(recurse=False))
            and all(id(p) in ids for p in m.parameters(recurse=False))
        ]

    def attach(self, optimizer: Optimizer) -> None:
        if self.epochs > 0:
            optimizer.register_step_pre_hook(self._drop_gradients())

    def _drop_gradients(self) -> Callable[[Optimizer, Any, Any], None]:
        def hook(optimizer: Optimizer, args: Any, kwargs: Any) -> None:
            if self.active:  # torch.optim skips a parameter whose gradient is None
                for param in self.frozen:
                    param.grad = None

        return hook

    def start_epoch(self, epoch: int) -> None:
        """Freeze in epochs 1..K, release after (call after the model's ``train()``)."""
        self.active = epoch <= self.epochs
        if not self.epochs:
            return
        if not self.compute_grads:
            for param in self.frozen:
                param.requires_grad_(not self.active)
        if self.active:
            for module in self.modules:
                module.training = False  # this module alone: a new child (an auxiliary BN) trains
