"""``extras``: what a run does before its task starts (known-noise filters, tags, config tree)."""

from __future__ import annotations

import warnings

from omegaconf import DictConfig

from src.utils import rich_utils
from src.utils.logging_utils import RankedLogger, route_lightning_logs

log = RankedLogger(__name__)

# warnings that say nothing actionable about a template run
KNOWN_NOISE = (
    r".*does not have many workers.*",  # our loaders need no workers
    r".*Consider setting `persistent_workers=True`.*",
    r".*The number of training batches .* is smaller than the logging interval.*",
    r".*`isinstance\(treespec, LeafSpec\)` is deprecated.*",
)


def extras(cfg: DictConfig) -> None:
    """Optional utilities before the task starts: quiet known noise, tags, config tree.
    (Always: Lightning's messages go where the run's other messages go.)"""
    route_lightning_logs()
    if not cfg.get("extras"):
        return
    if cfg.extras.get("ignore_warnings"):
        log.info("Silencing known-noise warnings! <cfg.extras.ignore_warnings=True>")
        for pattern in KNOWN_NOISE:
            warnings.filterwarnings("ignore", message=pattern)
    if cfg.extras.get("enforce_tags"):
        rich_utils.enforce_tags(cfg, save_to_file=True)
    if cfg.extras.get("print_config"):
        rich_utils.print_config_tree(cfg, resolve=True, save_to_file=True)
