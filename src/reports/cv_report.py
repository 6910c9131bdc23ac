"""Mean and standard deviation of each metric across the folds of a k-fold multirun.

After ``python src/train.py -m data.num_folds=K 'data.fold=range(K)'``,
``python src/reports/cv_report.py multirun_dir=<that multirun>`` (``make cv-report
MULTIRUN=...``) prints each fold's final ``test/`` metrics and best ``val/``
metric (``val/..._best``), their mean and (sample) standard deviation, and
writes the same into ``cv_report.csv`` and ``cv_report.json`` in the
multirun directory. Keys swept besides the fold give one cross-validation
each. The jobs are read with ``src.utils.runs`` (``fold_table``,
``fold_summary``), as a notebook would.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import rootutils
from omegaconf import DictConfig

rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.utils.atomic import write_json, write_text  # noqa: E402
from src.utils.entry_point import entry_point  # noqa: E402
from src.utils.errors import UserInputError  # noqa: E402
from src.utils.runs import fold_summary, fold_table  # noqa: E402

REPORT = "cv_report"


def plain(value: Any) -> Any:
    """A table cell as JSON takes it (NaN as null)."""
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def cv_report(multirun_dir: str | Path) -> dict[str, Any]:
    """Read the folds, print the table, write ``cv_report.csv``/``.json``; return the JSON."""
    if not str(multirun_dir).strip():
        raise UserInputError(
            "multirun_dir is not set: give the multirun of the folds, "
            "make cv-report MULTIRUN=logs/train/multiruns/<time>."
        )
    multirun_dir = Path(multirun_dir)
    table = fold_table(multirun_dir)
    summary = fold_summary(table)
    metrics, groups = summary.attrs["metrics"], table.attrs["groups"]
    keys = [*groups, "num_folds"]
    folds = table[[*keys, "fold", *metrics, "run_dir"]]
    statistics = summary.rename(columns={"statistic": "fold"})
    rows = pd.concat([folds, statistics], ignore_index=True)
    rows = rows.sort_values(keys, kind="stable", ignore_index=True)
    write_text(multirun_dir / f"{REPORT}.csv", rows.to_csv(index=False))

    report: dict[str, Any] = {
        "multirun_dir": str(multirun_dir),
        "metrics": metrics,
        "std": "sample standard deviation across the folds (ddof=1)",
        "cross_validations": [],
    }
    for setting, jobs in rows.groupby(keys, dropna=False, sort=False):
        per_fold = jobs[~jobs["fold"].isin(["mean", "std"])]
        stats = jobs.set_index("fold")
        report["cross_validations"].append(
            {
                "setting": {k: plain(v) for k, v in zip(groups, setting, strict=False)},
                "num_folds": plain(setting[-1]),
                "folds": [
                    {k: plain(v) for k, v in row.items() if k not in keys}
                    for row in per_fold.to_dict("records")
                ],
                **{s: {m: plain(stats.at[s, m]) for m in metrics} for s in ("mean", "std")},
            }
        )
        title = ", ".join(f"{k}={plain(v)}" for k, v in zip(keys, setting, strict=True))
        shown = jobs[["fold", *metrics]].to_string(index=False, float_format="{:.4f}".format)
        print(f"Cross-validation ({title}), std with ddof=1:\n{shown}\n")
    write_json(multirun_dir / f"{REPORT}.json", report)
    print(f"Report: {multirun_dir / REPORT}.csv and .json")
    return report


@entry_point("cv_report.yaml")
def main(cfg: DictConfig) -> None:
    cv_report(cfg.multirun_dir)


if __name__ == "__main__":
    main()
