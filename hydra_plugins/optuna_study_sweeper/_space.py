"""The search space, sampler and pruner of a sweep, on current Optuna.

hydra-optuna-sweeper 1.3.0 turns sweep overrides into Optuna 2's distribution
classes (``UniformDistribution``, ``IntUniformDistribution``...), which Optuna 3
deprecated and Optuna 6 removes, and its sampler configs pass 2021 defaults of
arguments Optuna 4 deprecated (``consider_prior``...). Both warn in every sweep.
Here the same override grammar maps to ``FloatDistribution`` / ``IntDistribution``
/ ``CategoricalDistribution``, and a sampler gets only the settings a user changed.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)
from hydra.errors import CompactHydraException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from src.utils.errors import UserInputError


class SweepError(UserInputError, CompactHydraException):
    """A search that cannot go on; Hydra prints its message alone (no traceback)."""


def distribution_of(override: Override) -> BaseDistribution | str:
    """The Optuna distribution of one sweep override, or the value of a fixed one."""
    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    value = override.value()
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        return CategoricalDistribution(
            list(override.sweep_iterator(transformer=Transformer.encode))
        )
    if isinstance(value, RangeSweep):
        # Hydra's range stops before ``stop`` (as Python's does); the plugin's included it
        start, stop, step = value.start, value.stop, value.step
        count = math.ceil((stop - start) / step)
        if count < 1:
            raise SweepError(f"{override.input_line}: the range holds no value.")
        if all(isinstance(v, int) for v in (start, stop, step)):
            return IntDistribution(start, start + (count - 1) * step, step=step)
        return FloatDistribution(start, start + (count - 1) * step, step=step)
    if isinstance(value, IntervalSweep):
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise SweepError(f"{override.input_line}: the Optuna sweeper cannot search this sweep.")


def space_of(overrides: list[str]) -> tuple[dict[str, BaseDistribution], dict[str, str]]:
    """The searched parameters' distributions and the fixed values, by override key."""
    searched: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(overrides):
        value = distribution_of(override)
        if isinstance(value, BaseDistribution):
            searched[override.get_key_element()] = value
        else:
            fixed[override.get_key_element()] = value
    for name in fixed:
        searched.pop(name, None)  # a fixed value on the command line wins over params
    return searched, fixed


def grid_choices(distribution: BaseDistribution) -> list[Any]:
    """Every value of a finite distribution (ValueError for an interval)."""
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    step = getattr(distribution, "step", None)
    if step is None or getattr(distribution, "log", False):
        raise ValueError("an interval has no finite set of values")
    count = round((distribution.high - distribution.low) / step) + 1
    return [distribution.low + i * step for i in range(count)]


def changed_settings(config: DictConfig) -> dict[str, Any]:
    """A sampler config as a dict, less the values the plugin's own schema defaults to.

    The plugin's sampler schemas (``hydra/sweeper/sampler=tpe``...) spell out the
    defaults of Optuna 2.10, several of which Optuna 4 deprecates; the current
    sampler's own defaults replace them unless the user set a value.
    """
    settings = OmegaConf.to_container(config, resolve=True)
    schema = OmegaConf.get_type(config)
    if schema is None or schema is dict:
        return settings
    defaults = OmegaConf.to_container(OmegaConf.structured(schema))
    keep = {"_target_", "_partial_", "seed"}
    return {k: v for k, v in settings.items() if k in keep or k not in defaults or defaults[k] != v}


def build_sampler(config: DictConfig, seed: int | None, offset: int) -> Any:
    """The sampler of ``config``, seeded with its own seed (or ``seed``) plus ``offset``.

    Every sampler but the grid has a ``seed``; the grid is returned as a partial
    the sweep completes with the search space.
    """
    settings = changed_settings(config)
    target = str(settings.get("_target_", ""))
    if target.endswith("MOTPESampler"):
        raise SweepError(
            "hydra/sweeper/sampler=motpe: Optuna 4 removed MOTPESampler; TPESampler handles "
            "several objectives now: use hydra/sweeper/sampler=tpe."
        )
    if "seed" in settings:
        base = settings["seed"] if settings["seed"] is not None else seed
        settings["seed"] = None if base is None else base + offset
    return build("sampler", settings)


def build_pruner(config: DictConfig | dict | None) -> Any:
    """The pruner of ``hydra/sweeper/pruner=...`` (None: no pruner config at all)."""
    if config is None:
        return None
    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=True)
    return build("pruner", config)


def build(kind: str, settings: dict[str, Any]) -> Any:
    """Instantiate a sampler or pruner, naming a wrong target or argument in one message."""
    target = settings.get("_target_")
    try:
        cls = instantiate({"_target_": "hydra.utils.get_class", "path": target})
    except Exception:
        raise SweepError(
            f"hydra.sweeper.{kind}._target_={target}: no such class. Pick a config: "
            f"hydra/sweeper/{kind}=<name> (configs/hydra/sweeper/{kind}/ and the plugin's)."
        ) from None
    accepted = inspect.signature(cls).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        unknown = sorted(k for k in settings if not k.startswith("_") and k not in accepted)
        if unknown:
            names = [n for n in accepted if n not in ("self", "search_space")]
            raise SweepError(
                f"hydra.sweeper.{kind}: {cls.__name__} takes no {unknown}. Its arguments: {names}."
            )
    try:
        return instantiate(settings)
    except Exception as error:
        cause = error.__cause__ or error
        raise SweepError(
            f"hydra.sweeper.{kind}: {cls.__name__} refused its settings: {cause}"
        ) from None
