"""A Hydra callback: a failed job's traceback goes into its own log file, and every
multirun ends with one table, a row per job (overrides, metrics, or the error of a failed
job), sorted by ``optimized_metric``; the same table is saved as
``<sweep dir>/multirun_summary.md``.

Light on purpose (no Lightning): the sweeper's process imports it. Each job leaves
``<job dir>/job_result.json`` (written in the job's own process, whatever the launcher),
and the sweeper's process reads them when the sweep ends, or at exit when a failed job
stopped the sweep (Hydra's basic sweeper re-raises a job's error before its
``on_multirun_end``).
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import traceback
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from src.utils.errors import user_error_in
from src.utils.loggers import NOT_IN_NAME

RESULT_FILE = "job_result.json"
# left in its run directory by a job a sweep's pruner stopped ({"epoch": <last epoch trained>}):
# it ended cleanly, as early stopping does, but its metrics are those of fewer epochs
PRUNED_FILE = "pruned.json"
# metrics where lower is better, when the sweeper does not say (hydra.sweeper.direction)
LOWER_IS_BETTER = ("loss", "mae", "mse", "rmse", "error", "nll")

log = logging.getLogger(__name__)


def pruned_after(epoch: int) -> str:
    """A pruned trial's note from its 0-based last epoch: "after epoch 0" read as untrained."""
    return f"pruned after {epoch + 1} epoch{'s' if epoch else ''}"


class MultirunSummary(Callback):
    def __init__(self, max_metrics: int = 4) -> None:
        self.max_metrics = max_metrics  # metric columns besides the optimized one(s)
        self.sweep_dir: Path | None = None
        self.config: DictConfig | None = None

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        failed = job_return.status == JobStatus.FAILED
        error = job_return._return_value if failed else None
        if isinstance(error, BaseException):
            log_traceback_to_file(error)
            error = user_error_in(error) or error  # the user's mistake, not a wrapper of it
        output_dir = Path(config.hydra.runtime.output_dir)
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        status_file = output_dir / "run_status.json"
        status = json.loads(status_file.read_text()) if status_file.is_file() else {}
        pruned_file = output_dir / PRUNED_FILE
        pruned = json.loads(pruned_file.read_text()) if pruned_file.is_file() else None
        metrics = dict(status.get("metrics", {}))
        if not failed:  # objectives the job returned that it logged as no metric (a size)
            returned = job_return._return_value
            values = returned if isinstance(returned, list | tuple) else [returned]
            for (name, _), value in zip(optimized(config), values, strict=False):
                if isinstance(value, int | float) and name not in metrics:
                    metrics[name] = float(value)
        result = {
            "job": config.hydra.job.num,
            "overrides": list(job_return.overrides or []),
            "status": "failed" if failed else "pruned" if pruned else "finished",
            "error": f"{type(error).__name__}: {error}" if failed else None,
            "metrics": metrics,
        }
        if pruned and not failed:
            result["pruned_after_epoch"] = pruned["epoch"]
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.sweep_dir = Path(config.hydra.sweep.dir)
        self.config = config
        atexit.register(self.report)  # a failed job may stop the sweep before its end

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.report()

    def report(self) -> None:
        if self.sweep_dir is None or self.config is None:
            return
        sweep_dir, self.sweep_dir = self.sweep_dir, None  # once
        atexit.unregister(self.report)
        results = [json.loads(p.read_text()) for p in sweep_dir.glob(f"*/{RESULT_FILE}")]
        if not results:
            return
        table = summary_table(results, optimized(self.config), self.max_metrics)
        (sweep_dir / "multirun_summary.md").write_text(table + "\n")
        print(f"\nMultirun summary ({sweep_dir}):\n{table}", flush=True)


def log_traceback_to_file(error: BaseException) -> None:
    """The job's traceback into its log file only (the console gets Hydra's own report)."""
    record = logging.LogRecord(
        "src.utils.multirun_summary", logging.ERROR, __file__, 0,
        "The job failed:\n%s", ("".join(traceback.format_exception(error)).rstrip(),), None,
    )  # fmt: skip
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def optimized(config: DictConfig) -> list[tuple[str, bool]]:
    """(metric, lower is better) for each optimized metric."""
    names = config.get("optimized_metric") or []
    names = [names] if isinstance(names, str) else list(names)
    directions = OmegaConf.select(config, "hydra.sweeper.direction", default=None)
    if isinstance(directions, str) or directions is None:
        directions = [directions] * len(names)
    return [
        (n, d == "minimize" if d else any(w in n.lower() for w in LOWER_IS_BETTER))
        for n, d in zip(names, directions, strict=False)
    ]


def cell(value: float) -> str:
    """A metric as the table shows it: 4 significant digits, a count whole (49740, where
    ``model/params/total`` read 4.974e+04)."""
    if isinstance(value, int | float) and math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return f"{value:.4g}"


def summary_table(results: list[dict], objectives: list[tuple[str, bool]], extra: int) -> str:
    """A Markdown table: finished jobs best first (by the first optimized metric), then the
    pruned ones (best first: their metrics are those of fewer epochs), then the failed ones
    with their error."""
    names = [n for n, _ in objectives]
    # overrides every job shares (and where it writes) go above the table, not in each row
    common = set.intersection(*(set(r["overrides"]) for r in results))
    shown = {
        r["job"]: " ".join(
            o for o in r["overrides"] if o not in common and not o.startswith(NOT_IN_NAME)
        )
        for r in results
    }
    others = sorted(
        {k for r in results for k in r["metrics"] if k.startswith("test/")} - set(names)
    )
    columns = names + others[:extra]

    def key(result: dict) -> tuple:
        value = result["metrics"].get(names[0]) if names else None
        group = {"finished": 0, "pruned": 1}.get(result["status"], 2)
        if group == 2 or value is None or not math.isfinite(value):
            return (2, result["job"])
        return (group, value if objectives[0][1] else -value)

    def status(result: dict) -> str:
        if result["status"] == "pruned":
            return pruned_after(result["pruned_after_epoch"])
        return "ok" if result["status"] == "finished" else f"FAILED: {result['error']}"

    kept = sorted(o for o in common if not o.startswith(NOT_IN_NAME))
    lines = [f"every job: {' '.join(kept)}", ""] if kept else []
    lines += [
        "| job | overrides | " + " | ".join([*columns, "status"]) + " |",
        "|---|---|" + "---|" * (len(columns) + 1),
    ]
    for r in sorted(results, key=key):
        cells = [cell(r["metrics"][c]) if c in r["metrics"] else "" for c in columns]
        cells.append(status(r).replace("|", "/").replace("\n", " ")[:200])
        lines.append(f"| {r['job']} | {shown[r['job']]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
