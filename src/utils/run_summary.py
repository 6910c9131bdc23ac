"""What a run reports when it ends: its closing lines and the metric for the sweeper."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lightning.pytorch.utilities import rank_zero_only

from src.utils.errors import MetricNotLoggedError
from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__)


@rank_zero_only
def print_summary(metric_dict: dict[str, Any], output_dir: str) -> None:
    """A run's closing lines: its test metrics and where everything was written."""
    tests = {k: float(v) for k, v in sorted(metric_dict.items()) if k.startswith("test/")}
    if tests:
        print("Test metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in tests.items()))
    print(f"Run directory: {output_dir}")


def get_metric_value(
    metric_dict: dict[str, Any], metric_name: str | Sequence[str] | None
) -> float | list[float] | None:
    """The value of ``optimized_metric`` for the sweeper; a list of values when it names
    several metrics (a multi-objective search, one ``hydra.sweeper.direction`` each)."""
    if not metric_name:
        log.info("Metric name is None! Skipping metric value retrieval...")
        return None
    names = [metric_name] if isinstance(metric_name, str) else list(metric_name)
    missing = [name for name in names if name not in metric_dict]
    if missing:
        raise MetricNotLoggedError(
            f"optimized_metric={metric_name} names {missing}, which the run did not log. "
            f"Logged metrics: {sorted(metric_dict)}. Set optimized_metric to one of them "
            "(or a list of them)."
        )
    values = [float(metric_dict[name]) for name in names]
    shown = ", ".join(f"{n}={v}" for n, v in zip(names, values, strict=True))
    log.info(f"Retrieved metric value! <{shown}>")
    return values[0] if isinstance(metric_name, str) else values
