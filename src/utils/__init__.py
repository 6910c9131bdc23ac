"""The template's helpers, importable as ``from src.utils import ...``.

Each name is imported from its module on first use, so that importing a light
module of this package (``src.utils.errors``) does not import Lightning: the
VIMH generator, for one, starts in about 2 s instead of 12.
"""

from importlib import import_module
from typing import Any

_HOMES = {
    "best_checkpoint": "src.utils.checkpoints",
    "check_batchnorm_batches": "src.utils.checkpoints",
    "check_checkpoint_fits": "src.utils.checkpoints",
    "UserInputError": "src.utils.errors",
    "instantiate_callbacks": "src.utils.instantiators",
    "instantiate_loggers": "src.utils.instantiators",
    "instantiate_model": "src.utils.instantiators",
    "RankedLogger": "src.utils.logging_utils",
    "log_hyperparameters": "src.utils.logging_utils",
    "enforce_tags": "src.utils.rich_utils",
    "print_config_tree": "src.utils.rich_utils",
    "exit_on_user_error": "src.utils.errors",
    "extras": "src.utils.utils",
    "get_metric_value": "src.utils.utils",
    "print_summary": "src.utils.utils",
    "task_wrapper": "src.utils.run_status",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'src.utils' has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
