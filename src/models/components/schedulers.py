"""Learning-rate schedules stepped after every optimizer step (warmup needs steps, not epochs).

Each factory here is marked ``@per_step``: ``BaseLitModule.configure_optimizers``
calls it with ``total_steps`` from the trainer's ``estimated_stepping_batches``
(which counts ``max_epochs`` or ``max_steps``, ``limit_train_batches``,
``accumulate_grad_batches`` and the number of processes) and tells Lightning to
step it every optimizer step. Any other scheduler (torch's ``CosineAnnealingLR``,
``ReduceLROnPlateau``) is stepped once an epoch.

The schedules are torch's ``LambdaLR`` and ``OneCycleLR``; only the LR-factor
formulas are ours, written out so a test can check them step by step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from src.utils.errors import UserInputError


def per_step(factory: Callable[..., LRScheduler]) -> Callable[..., LRScheduler]:
    """Mark a scheduler factory as stepped every optimizer step, taking ``total_steps``."""
    factory.interval = "step"  # type: ignore[attr-defined]
    return factory


def interval_of(factory: Any) -> str:
    """``"step"`` for a ``@per_step`` factory (or a partial of one), else ``"epoch"``."""
    return getattr(getattr(factory, "func", factory), "interval", "epoch")


def warmup_steps_of(total_steps: int, warmup_steps: int | None, warmup_fraction: float) -> int:
    """``warmup_steps`` when given, else ``warmup_fraction`` of the total, rounded."""
    if total_steps < 1 or not math.isfinite(total_steps):
        raise UserInputError(
            f"A per-step learning-rate schedule needs a finite number of training steps; the "
            f"trainer estimates {total_steps}. Set trainer.max_epochs or trainer.max_steps."
        )
    steps = warmup_steps if warmup_steps is not None else round(warmup_fraction * total_steps)
    if not 0 <= steps < total_steps:
        raise UserInputError(
            f"The warmup ({steps} steps) must be shorter than the whole run ({total_steps} "
            "optimizer steps): lower model.scheduler.warmup_steps or warmup_fraction."
        )
    return int(steps)


def warmup_cosine_factor(
    step: int, total: int, warmup: int, min_lr_ratio: float, start_factor: float
) -> float:
    """LR / base LR at ``step``: linear from ``start_factor`` to 1 over ``warmup`` steps,
    then a half cosine from 1 down to ``min_lr_ratio`` at step ``total``."""
    if step < warmup:
        return start_factor + (1.0 - start_factor) * step / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def linear_warmup_factor(
    step: int, total: int, warmup: int, final_lr_ratio: float, start_factor: float
) -> float:
    """LR / base LR at ``step``: linear from ``start_factor`` to 1 over ``warmup`` steps,
    then linear from 1 to ``final_lr_ratio`` at step ``total`` (1.0: constant)."""
    if step < warmup:
        return start_factor + (1.0 - start_factor) * step / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 1.0 + (final_lr_ratio - 1.0) * progress


@per_step
def warmup_cosine(
    optimizer: Optimizer,
    total_steps: int,
    warmup_steps: int | None = None,
    warmup_fraction: float = 0.05,
    min_lr_ratio: float = 0.0,
    start_factor: float = 0.0,
) -> LambdaLR:
    """Linear warmup, then cosine decay to ``min_lr_ratio`` x the optimizer's LR."""
    warmup = warmup_steps_of(total_steps, warmup_steps, warmup_fraction)
    return LambdaLR(
        optimizer,
        lambda step: warmup_cosine_factor(step, total_steps, warmup, min_lr_ratio, start_factor),
    )


@per_step
def linear_warmup(
    optimizer: Optimizer,
    total_steps: int,
    warmup_steps: int | None = None,
    warmup_fraction: float = 0.05,
    final_lr_ratio: float = 1.0,
    start_factor: float = 0.0,
) -> LambdaLR:
    """Linear warmup, then linear to ``final_lr_ratio`` x the optimizer's LR at the end."""
    warmup = warmup_steps_of(total_steps, warmup_steps, warmup_fraction)
    return LambdaLR(
        optimizer,
        lambda step: linear_warmup_factor(step, total_steps, warmup, final_lr_ratio, start_factor),
    )


@per_step
def onecycle(optimizer: Optimizer, total_steps: int, **kwargs: Any) -> OneCycleLR:
    """torch's ``OneCycleLR`` over the run's ``total_steps`` (its other arguments as given)."""
    warmup_steps_of(total_steps, 0, 0.0)  # a finite run, or one clear message
    return OneCycleLR(optimizer, total_steps=int(total_steps), **kwargs)
