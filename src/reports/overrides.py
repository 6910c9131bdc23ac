"""Overrides that rebuild a trial: the grammar of ``src/train.py``'s command line.

``trial_overrides`` turns an Optuna trial (its sweep's command-line overrides,
kept in its user attributes, and its parameters) into the overrides that compose
exactly the configuration it ran; ``experiment_yaml`` writes them as an
experiment config.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

PLAIN = re.compile(r"[A-Za-z_][\w\-./]*")
KEYWORDS = {"true", "false", "null", "nan", "inf"}


def override_value(value: Any) -> str:
    """``value`` written as Hydra's override grammar reads it back."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)  # inf, -inf as Hydra spells them
    if isinstance(value, str):
        if PLAIN.fullmatch(value) and value.lower() not in KEYWORDS:
            return value
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list | tuple):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{override_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no override syntax for {type(value).__name__}: {value!r}")


def compose_train(overrides: list[str]) -> DictConfig:
    """``configs/train.yaml`` composed with ``overrides``, Hydra's node included."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside a Hydra app
        return compose(config_name="train", overrides=overrides, return_hydra_config=True)
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=True)


def job_part(cfg: DictConfig) -> dict[str, Any]:
    """What a run sees of a composed config (Hydra's node left out), unresolved."""
    content = OmegaConf.to_container(cfg, resolve=False)
    content.pop("hydra", None)
    return content


def group_choices(cfg: DictConfig) -> dict[str, Any]:
    choices = OmegaConf.to_container(cfg.hydra.runtime.choices)
    return {
        g: c for g, c in choices.items() if g != "hparams_search" and g.split("/")[0] != "hydra"
    }


def value_overrides(target: dict, have: dict, prefix: str = "") -> list[str]:
    """``++key=value`` and ``~key`` overrides that turn ``have`` into ``target``."""
    out = []
    for key, value in target.items():
        if isinstance(value, dict) and isinstance(have.get(key), dict):
            out += value_overrides(value, have[key], f"{prefix}{key}.")
        elif key not in have or have[key] != value:
            out.append(f"++{prefix}{key}={override_value(value)}")
    out += [f"~{prefix}{key}" for key in have if key not in target]
    return out


def ran_with(trial: Any) -> list[str]:
    """The overrides the trial's job got: its sweep's command line and its parameters.

    The sweeper keeps them as the ``overrides`` user attribute; the earlier sweeper
    (hydra-optuna-sweeper's loop) kept each command-line value as a string attribute.
    """
    line = trial.user_attrs.get("overrides")
    if isinstance(line, list):
        return [str(override) for override in line]
    fixed = [f"{k}={v}" for k, v in trial.user_attrs.items() if isinstance(v, str)]
    return fixed + [f"{k}={v}" for k, v in trial.params.items()]


def trial_overrides(trial: Any, search: str) -> tuple[list[str], DictConfig]:
    """The overrides of ``src/train.py`` that compose exactly what ``trial`` ran, and that config.

    The trial ran ``train.yaml`` + the search config + the sweep's command-line
    overrides (kept by the sweeper as the trial's user attributes) + its
    parameters. Without the search config (it makes a multirun), the line needs
    what the search config set: its group choices (base experiment first), then
    any value that still differs.
    """
    own = []
    for override in ran_with(trial):
        key, _, value = override.partition("=")
        if key == "hparams_search":
            search = value
        else:
            own.append(override)
    target = compose_train([f"hparams_search={search}", *own])
    wanted, content = group_choices(target), job_part(target)
    # the base experiment first: the trial's own group overrides (model/criterion=huber)
    # may name groups only its defaults bring in
    base = wanted.get("experiment")
    extra = (
        [f"experiment={base}"] if base and not any(o.startswith("experiment=") for o in own) else []
    )
    for _ in range(8):  # the experiment first: its own defaults move other groups
        have = group_choices(line := compose_train([*extra, *own]))
        differ = {
            g: f"{'' if g in have else '+'}{g}={override_value(c)}"
            for g, c in wanted.items()
            if (g in have and have[g] != c) or (g not in have and c is not None)
        }
        if not differ:
            break
        extra += [differ["experiment"]] if "experiment" in differ else list(differ.values())
    extra += value_overrides(content, job_part(line))
    line = compose_train([*extra, *own])
    if group_choices(line) != wanted or job_part(line) != content:
        raise RuntimeError(
            f"study_report could not rebuild trial {trial.number}'s config from overrides "
            f"{[*extra, *own]}: please report this with the search config {search}."
        )
    return [*extra, *own], line


def late_groups() -> set[str]:
    """Groups train.yaml lists after ``experiment``: an experiment cannot override them."""
    names = [
        entry if isinstance(entry, str) else next(iter(entry)).split()[-1]
        for entry in OmegaConf.to_container(OmegaConf.load(CONFIGS / "train.yaml").defaults)
    ]
    return set(names[names.index("experiment") + 1 :])


def experiment_yaml(overrides: list[str], groups: set[str], header: list[str]) -> str:
    """The overrides as a ``configs/experiment``-style config (``# @package _global_``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    includes: list[Any] = []
    replaced: list[Any] = []
    values = OmegaConf.create()
    late = late_groups()
    for override in OverridesParser.create().parse_overrides(overrides):
        key, value = override.key_or_group, override.value()
        if override.is_delete() and key in groups:  # ~logger: no logger
            replaced.append({f"override /{key}": None})
        elif override.is_delete():
            header.append(f"not expressible in a config, pass it too: {override.input_line}")
        elif key not in groups:
            OmegaConf.update(values, key, value, merge=True, force_add=True)
        elif key == "experiment" or key.split("/")[0] in late:
            # an experiment's defaults cannot override these: include the option itself
            if value is not None:
                includes.insert(0 if key == "experiment" else len(includes), f"/{key}/{value}")
        elif override.is_add() or override.is_force_add():
            includes.append({f"/{key}": value})
        else:
            replaced.append({f"override /{key}": value})
    text = "# @package _global_\n\n" + "".join(f"# {line}\n" for line in header)
    text += "\n" + OmegaConf.to_yaml({"defaults": [*includes, *replaced, "_self_"]})
    if values:
        text += "\n" + OmegaConf.to_yaml(values)
    return text
