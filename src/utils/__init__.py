from src.utils.checkpoints import best_checkpoint, check_batchnorm_batches, check_checkpoint_fits
from src.utils.errors import UserInputError
from src.utils.instantiators import instantiate_callbacks, instantiate_loggers, instantiate_model
from src.utils.logging_utils import RankedLogger, log_hyperparameters
from src.utils.rich_utils import enforce_tags, print_config_tree
from src.utils.utils import (
    exit_on_user_error,
    extras,
    get_metric_value,
    print_summary,
    task_wrapper,
)

__all__ = [
    "RankedLogger",
    "UserInputError",
    "best_checkpoint",
    "check_batchnorm_batches",
    "check_checkpoint_fits",
    "enforce_tags",
    "exit_on_user_error",
    "extras",
    "get_metric_value",
    "instantiate_callbacks",
    "instantiate_loggers",
    "instantiate_model",
    "log_hyperparameters",
    "print_config_tree",
    "print_summary",
    "task_wrapper",
]
