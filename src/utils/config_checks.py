"""Types and ranges of the main config values, checked as soon as the config is composed.

A wrong value (``data.batch_size=abc``) stops the run with one message naming the key, the
value and what is expected, before Lightning is imported (tens of seconds on a small
machine) rather than as a ``TypeError`` deep inside a DataLoader. Imports only omegaconf.

A rule applies when its key exists in the composed config: a data module without
``batch_size`` or a config without a trainer is not an error here. Values a component
checks itself with more context (a data module's split sizes, a checkpoint path) stay there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from src.utils.errors import UserInputError

_MISSING = object()


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return (_int(value) or isinstance(value, float)) and math.isfinite(value)


def _fraction_or_count(value: Any) -> bool:
    """Lightning's limit_*_batches: a count of batches or a fraction of them."""
    return (_int(value) and value >= 0) or (isinstance(value, float) and 0.0 <= value <= 1.0)


# key -> (check, what is expected, an example); None passes where the key may be null
RULES: dict[str, tuple[Callable[[Any], bool], str, str, bool]] = {
    "data.batch_size": (lambda v: _int(v) and v >= 1, "an integer >= 1", "64", False),
    # null: the folder data modules choose (the cores but one; pinned when CUDA is there)
    "data.num_workers": (lambda v: _int(v) and v >= 0, "an integer >= 0", "0", True),
    "data.pin_memory": (lambda v: isinstance(v, bool), "true or false", "false", True),
    "trainer.max_epochs": (
        lambda v: _int(v) and v >= -1,
        "an integer >= 1 (or -1: no limit)",
        "20",
        True,
    ),
    "trainer.min_epochs": (lambda v: _int(v) and v >= 0, "an integer >= 0", "1", True),
    "trainer.max_steps": (lambda v: _int(v) and v >= -1, "an integer (-1: no limit)", "-1", True),
    "trainer.accumulate_grad_batches": (
        lambda v: _int(v) and v >= 1,
        "an integer >= 1",
        "1",
        False,
    ),
    "trainer.check_val_every_n_epoch": (lambda v: _int(v) and v >= 1, "an integer >= 1", "1", True),
    "trainer.log_every_n_steps": (lambda v: _int(v) and v >= 1, "an integer >= 1", "50", True),
    "trainer.gradient_clip_val": (lambda v: _number(v) and v >= 0, "a number >= 0", "1.0", True),
    "trainer.limit_train_batches": (_fraction_or_count, "a count or a fraction 0..1", "0.5", True),
    "trainer.limit_val_batches": (_fraction_or_count, "a count or a fraction 0..1", "0.5", True),
    "trainer.limit_test_batches": (_fraction_or_count, "a count or a fraction 0..1", "0.5", True),
    # 0 is allowed: a frozen run (nothing learns) is a fair check of the machinery
    "model.optimizer.lr": (lambda v: _number(v) and v >= 0, "a number >= 0", "0.001", False),
    "model.optimizer.weight_decay": (
        lambda v: _number(v) and v >= 0,
        "a number >= 0",
        "0.0",
        False,
    ),
    "model.optimizer.momentum": (
        lambda v: _number(v) and 0 <= v < 1,
        "a number in [0, 1)",
        "0.9",
        False,
    ),
    "seed": (_int, "an integer (or null: unseeded)", "12345", True),
    "train": (lambda v: isinstance(v, bool), "true or false", "true", False),
    "test": (lambda v: isinstance(v, bool), "true or false", "true", False),
    "tags": (
        lambda v: isinstance(v, ListConfig | list) and all(isinstance(t, str | int) for t in v),
        "a list of words",
        "[dev,mlp]",
        True,
    ),
}


def _value(cfg: DictConfig, key: str) -> Any:
    """The value at ``key``, resolved; ``_MISSING`` where the key or its parent is absent.
    A value that cannot be resolved here (it needs the data, ``${data_spec:...}``) is not ours
    to check."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, default=None) if parent_key else cfg
    if not isinstance(parent, DictConfig) or leaf not in parent:
        return _MISSING
    try:
        return parent[leaf]
    except Exception:  # an interpolation that resolves later (data_spec, hydra runtime)
        return _MISSING


def check_config(cfg: DictConfig) -> None:
    """Raise one ``UserInputError`` listing every value of the wrong type or range."""
    problems = []
    for key, (ok, expected, example, nullable) in RULES.items():
        value = _value(cfg, key)
        if value is _MISSING or (value is None and nullable) or ok(value):
            continue
        shown = "null" if value is None else repr(value)
        problems.append(f"{key}={shown} must be {expected} (for example {key}={example})")
    if problems:
        raise UserInputError("; ".join(problems) + ".")
