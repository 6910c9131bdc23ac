"""Stop a run early whose ``optimized_metric`` names a metric it does not log.

``src/train.py`` reads ``optimized_metric`` only after training and testing, so a
misspelt name (``optimized_metric=val/acc_bets``) cost the whole run before its
error, and every job of a sweep paid it again. ``instantiate_run`` adds this callback
to training runs that name one: after the first epoch that validated, every
named metric that is not a test metric (logged after fit) or a parameter count
(counted after fit) must be among the trainer's logged metrics.

It checks at the start of the next epoch, not at the end of validation: a module's
``train/...`` epoch metrics are logged in its ``on_train_epoch_end``, which runs after
validation and after the callbacks' own ``on_train_epoch_end``. A run of one epoch is
checked by ``src/train.py`` at its end, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from lightning import Callback, LightningModule, Trainer

from src.utils.errors import MetricNotLoggedError

# metrics a run has only after fit: test/... (trainer.test) and the parameter counts
# that src/train.py adds to the objectives (src.utils.logging_utils.count_parameters)
AFTER_FIT = ("test/", "model/params/")


def fit_free(names: str | Sequence[str] | None) -> bool:
    """Whether a run that does not fit (``train=false``) can have every metric ``names``
    names: test metrics and parameter counts only (or no names at all)."""
    names = [names] if isinstance(names, str) else list(names or [])
    return all(name.startswith(AFTER_FIT) for name in names)


class OptimizedMetricCheck(Callback):
    """Raise ``MetricNotLoggedError`` once a validated epoch has passed without ``names``.

    Args:
        names: ``optimized_metric``, one name or several (a multi-objective search).
    """

    def __init__(self, names: str | Sequence[str]) -> None:
        self.shown = names if isinstance(names, str) else list(names)  # as get_metric_value
        names = [names] if isinstance(names, str) else list(names)
        self.names = [name for name in names if not name.startswith(AFTER_FIT)]
        self.validated = False
        self.checked = False

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self.validated = True

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.checked or not self.validated:
            return
        self.checked = True
        missing = [name for name in self.names if name not in trainer.callback_metrics]
        if missing:
            raise MetricNotLoggedError(
                f"optimized_metric={self.shown} names {missing}, which this run did not log "
                f"in epoch {trainer.current_epoch - 1}: it would fail at the end, after all its "
                "training. "
                f"Logged metrics: {sorted(trainer.callback_metrics)}. Set optimized_metric to "
                "one of them (or a list of them)."
            )
