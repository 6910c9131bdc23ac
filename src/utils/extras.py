"""``extras``: what a run does before its task starts (known-noise filters, tags, config tree)."""

from __future__ import annotations

import logging
import warnings

from omegaconf import DictConfig

from src.utils import rich_utils
from src.utils.errors import in_multirun
from src.utils.logging_utils import RankedLogger, route_lightning_logs

log = RankedLogger(__name__)

# warnings that say nothing actionable about a template run
KNOWN_NOISE = (
    r".*does not have many workers.*",  # our loaders need no workers
    r".*Consider setting `persistent_workers=True`.*",
    r".*The number of training batches .* is smaller than the logging interval.*",
)
# deprecations inside a library's own code: no setting of a run changes them, so they are
# silenced in every run, debug runs (extras.ignore_warnings=False) too
LIBRARY_NOISE = (
    r".*`isinstance\(treespec, LeafSpec\)` is deprecated.*",  # Lightning's _pytree.py
)


# Lightning's info lines that advertise or restate what the config says
LIGHTNING_CHATTER = ("💡 Tip:", "Trainer already configured with model summary callbacks")
# libraries that talk at INFO on every run (alembic and mlflow: MLflow's database set-up)
# INFO chatter of libraries: database migrations, litdata's "POSIX-fast: mmap chunks in
# place" once per data set opened (three times a streaming run)
QUIET_LOGGERS = (
    "alembic",
    "alembic.runtime.migration",
    "mlflow.store.db.utils",
    "litdata.streaming.dataset",
    # the ONNX exporter's graph passes ("Removed 29 unused nodes", "Skipping constant folding")
    "onnx_ir",
    "onnxscript",
)


class DropChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(LIGHTNING_CHATTER)


def quiet_console() -> None:
    for pattern in LIBRARY_NOISE:
        warnings.filterwarnings("ignore", message=pattern)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        target = logging.getLogger(name)
        if not any(isinstance(f, DropChatter) for f in target.filters):
            target.addFilter(DropChatter())


def first_job_or_single_run() -> bool:
    """The config tree reaches the console once per multirun: from its first job."""
    from hydra.core.hydra_config import HydraConfig

    return not in_multirun() or HydraConfig.get().job.get("num", 0) == 0


def extras(cfg: DictConfig) -> None:
    """Optional utilities before the task starts: quiet known noise, tags, config tree.
    (Always: Lightning's messages go where the run's other messages go.)"""
    route_lightning_logs()
    quiet_console()
    if not cfg.get("extras"):
        return
    if cfg.extras.get("ignore_warnings"):
        log.info("Silencing known-noise warnings! <cfg.extras.ignore_warnings=True>")
        for pattern in KNOWN_NOISE:
            warnings.filterwarnings("ignore", message=pattern)
    if cfg.extras.get("enforce_tags"):
        rich_utils.enforce_tags(cfg, save_to_file=True)
    if cfg.extras.get("print_config"):
        rich_utils.print_config_tree(
            cfg, resolve=True, save_to_file=True, to_console=first_job_or_single_run()
        )
