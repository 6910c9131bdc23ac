"""The one exception type for mistakes a user can fix.

Raise ``UserInputError`` with a message that says what is wrong, where, and
what to do. The entry points print that message alone (no traceback unless
``HYDRA_FULL_ERROR=1``) and exit with status 1.

This module imports nothing heavy: light entry points (the VIMH generator, the
reports) use ``exit_on_user_error`` without paying for Lightning.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omegaconf import DictConfig


class UserInputError(Exception):
    """A wrong path, a corrupt file, or a configuration that cannot work."""


class MetricNotLoggedError(UserInputError):
    """``optimized_metric`` names a metric the run never logged (a sweep stops at once)."""


def exit_on_user_error(main: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Turn a ``UserInputError`` into its message alone and exit status 1.

    ``HYDRA_FULL_ERROR=1`` shows the full traceback instead.
    """

    @functools.wraps(main)
    def wrap(cfg: DictConfig) -> Any:
        try:
            return main(cfg)
        except Exception as error:
            cause = user_error_in(error)
            if cause is None or os.environ.get("HYDRA_FULL_ERROR") == "1" or in_multirun():
                raise  # in a multirun the sweeper records the failed job and goes on
            print(f"Error: {cause}", file=sys.stderr, flush=True)
            raise SystemExit(1) from None

    return wrap


def in_multirun() -> bool:
    """Whether this is a job of a multirun (``-m``, or an ``hparams_search`` config)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def user_error_in(error: BaseException) -> UserInputError | None:
    """The ``UserInputError`` behind ``error``, if any.

    Hydra's ``instantiate`` re-raises what a constructor raised as an
    ``InstantiationException`` whose cause is the original error: follow the chain.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, UserInputError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@contextlib.contextmanager
def user_errors_unwrapped() -> Iterator[None]:
    """Re-raise the ``UserInputError`` behind an error raised inside as itself.

    An OmegaConf resolver's error (``${data_spec:...}`` builds the data module) comes
    out wrapped in an ``InterpolationResolutionError``; a multirun's job report and
    summary would name that instead of the user's mistake.
    """
    try:
        yield
    except UserInputError:
        raise
    except Exception as error:
        cause = user_error_in(error)
        if cause is None:
            raise
        raise cause from None
