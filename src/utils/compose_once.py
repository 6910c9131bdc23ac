"""A single run composes its config once, not twice.

Hydra's ``@hydra.main`` composes the whole config to read ``hydra.mode`` (``get_mode``:
the search configs set ``MULTIRUN``, so ``python src/train.py hparams_search=...`` sweeps
without ``-m``), throws it away, and composes again for the run: ~0.1 s of the start-up
on the build machines for each compose, with the template's ~30 config files. Here
``get_mode`` composes as the run will (``RunMode.RUN``) and keeps the result; the run's
own compose, with the same arguments, is then served that config instead of a second
one. Everything else is Hydra's: a sweep, ``-m``, a sweep override (``x=1,2``), and
any compose that fails here (Hydra then composes and reports as it always does).

What the run gets is what Hydra's second compose gives: where the config leaves
``hydra.mode`` unset, Hydra's ``_run_app`` adds the override ``hydra.mode=RUN`` before
it composes again, and the kept config gets the same value and the same line in
``hydra.overrides.hydra``. ``tests/utils/test_compose_once.py`` compares both configs
(``hydra`` node included) on several command lines; it fails if a Hydra release composes
the run differently.

Hydra internals used (hydra-core 1.3): ``Hydra.get_mode``, ``Hydra.config_loader``'s
``load_configuration``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hydra._internal.hydra import Hydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig

RUN_OVERRIDE = "hydra.mode=RUN"  # what Hydra's _run_app adds when the config sets no mode


def _has_sweep(overrides: list[str]) -> bool:
    """Whether any override sweeps (``x=1,2``, ``x=range(3)``); unparsable counts as one:
    Hydra's own compose then reports it."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:
        return True
    return any(override.is_sweep_override() for override in parsed)


def _serve_once(loader: Any, config_name: str | None, overrides: list[str], cfg: DictConfig):
    """Make ``loader.load_configuration`` return ``cfg`` for one call with these arguments
    in run mode; any other call, and every call after it, is the loader's own."""
    own = loader.load_configuration

    def load_configuration(*args: Any, **kwargs: Any) -> DictConfig:
        served = (
            not args
            and kwargs.get("config_name") == config_name
            and list(kwargs.get("overrides") or []) == overrides
            and kwargs.get("run_mode") == RunMode.RUN
            and kwargs.get("validate_sweep_overrides", True)
        )
        del loader.load_configuration  # back to the class's own method
        return cfg if served else own(*args, **kwargs)

    loader.load_configuration = load_configuration


def _get_mode(self: Hydra, config_name: str | None, overrides: list[str]) -> Any:
    """``Hydra.get_mode`` that keeps its compose for the run."""
    if _has_sweep(overrides):
        return _HYDRA_GET_MODE(self, config_name, overrides)
    try:
        cfg = self.config_loader.load_configuration(
            config_name=config_name, overrides=list(overrides), run_mode=RunMode.RUN
        )
    except Exception:  # Hydra's own path composes again and reports it
        return _HYDRA_GET_MODE(self, config_name, overrides)
    mode = cfg.hydra.mode
    if mode is None:  # the run composes with hydra.mode=RUN added: give the kept one that too
        cfg.hydra.mode = RunMode.RUN
        cfg.hydra.overrides.hydra.append(RUN_OVERRIDE)
        _serve_once(self.config_loader, config_name, [*overrides, RUN_OVERRIDE], cfg)
    elif mode == RunMode.RUN:
        _serve_once(self.config_loader, config_name, list(overrides), cfg)
    return mode


_HYDRA_GET_MODE = Hydra.get_mode


@contextmanager
def composed_once() -> Iterator[None]:
    """While inside: a ``@hydra.main`` run composes its config once."""
    Hydra.get_mode = _get_mode  # type: ignore[method-assign]
    try:
        yield
    finally:
        Hydra.get_mode = _HYDRA_GET_MODE  # type: ignore[method-assign]
