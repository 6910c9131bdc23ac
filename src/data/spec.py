"""``${data_spec:KEY}``: model config values that come from the data.

A model config states what it takes from the data (``num_classes:
${data_spec:num_classes}``, ``input_shape: ${data_spec:input_shape}``,
``heads: ${data_spec:heads}``); the resolver answers from the ``spec`` of the
data module that the same config's ``data`` node builds. So a plain
``hydra.utils.instantiate(cfg.model)`` on a composed config works (LHT's
habit in notebooks and scripts), and everything that resolves the config (the
config tree, the logged hyperparameters) shows the real numbers.

One data module answers per data config: the first resolution builds it,
``build_datamodule`` (used by ``train.py`` and the tools) hands that same
object to the run, so the data are not loaded twice. A second run in the same
process with the same data config (a multirun job) gets a new one.

``register()`` runs when ``src`` is imported (``src/__init__.py``), so every
entry point, test and notebook has the resolver before its config is resolved.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.utils.errors import UserInputError

RESOLVER = "data_spec"

# the data module whose spec answers, by its data config: (yaml, module, handed out)
_current: list[Any] = [None, None, False]


def _key(data_cfg: DictConfig) -> str:
    # JSON of the resolved values: half the time of OmegaConf.to_yaml (pure-Python YAML), and
    # a run resolves ${data_spec:...} about ten times before it starts
    return json.dumps(OmegaConf.to_container(data_cfg, resolve=True), default=repr)


def _build(data_cfg: DictConfig) -> Any:
    import hydra

    return hydra.utils.instantiate(data_cfg)


def build_datamodule(data_cfg: DictConfig) -> Any:
    """The run's data module: the one that answered ``${data_spec:...}`` for this data
    config, if it has not been handed to a run yet, or a new one."""
    key = _key(data_cfg)
    if _current[0] == key and not _current[2]:
        _current[2] = True
        return _current[1]
    datamodule = _build(data_cfg)
    _current[:] = [key, datamodule, True]
    return datamodule


def spec_of(data_cfg: DictConfig) -> dict[str, Any]:
    """The ``spec`` of the data module that ``data_cfg`` builds (built once)."""
    key = _key(data_cfg)
    if _current[0] != key:
        _current[:] = [key, _build(data_cfg), False]
    return dict(getattr(_current[1], "spec", None) or {})


def _resolve(key: str, *, _root_: DictConfig, _parent_: Any) -> Any:
    where = _parent_._get_full_key(None) if _parent_ is not None else ""
    data_cfg = _root_.get("data") if isinstance(_root_, DictConfig) else None
    if not isinstance(data_cfg, DictConfig) or "_target_" not in data_cfg:
        raise UserInputError(
            f"{where or 'The config'} takes ${{{RESOLVER}:{key}}} from the data, but the "
            "config has no data module (data=...). Compose the whole config (train.yaml) "
            "or give the value itself."
        )
    spec = spec_of(data_cfg)
    if key not in spec:
        module = data_cfg._target_.rsplit(".", 1)[-1]
        fitting = models_taking_only(spec)
        choose = f"model={' or model='.join(fitting)}" if fitting else "model=..."
        raise UserInputError(
            f"The model config ({where}) takes '{key}' from the data, and the data module "
            f"{module} does not provide it (it provides {sorted(spec) or 'nothing'}): this "
            f"model and this data do not go together. Choose a model made for this data "
            f"({choose}), or set the value on the command line ({where}.{key}=...)."
        )
    value = spec[key]
    return list(value) if isinstance(value, tuple) else value


def models_taking_only(spec: dict[str, Any]) -> list[str]:
    """The model configs (``configs/model/<name>.yaml``) whose ``${data_spec:...}`` keys
    this spec all provides: the models to suggest when one does not fit the data."""
    folder = Path(__file__).resolve().parents[2] / "configs" / "model"
    fitting = []
    for path in sorted(folder.glob("*.yaml")):
        keys = set(re.findall(rf"\${{{RESOLVER}:([a-z_]+)}}", path.read_text()))
        if keys and keys <= set(spec):
            fitting.append(path.stem)
    return fitting


def register() -> None:
    """Make ``${data_spec:KEY}`` known to OmegaConf (idempotent)."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, _resolve, use_cache=False)


def answer_with(data_cfg: DictConfig, datamodule: Any) -> None:
    """Let ``datamodule`` (built from ``data_cfg`` by a tool) answer ``${data_spec:...}``."""
    _current[:] = [_key(data_cfg), datamodule, True]
