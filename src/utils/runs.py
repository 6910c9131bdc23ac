"""Read what runs left under ``logs/``: the API the notebooks are built on.

A run directory is any directory with a ``.hydra/config.yaml``. From it this
module reads the overrides and tags (Hydra's files), the metric history (the
CSV logger's ``metrics.csv``), how the run ended (``run_status.json``, written
by ``task_wrapper``), and its checkpoints. Everything returns plain pandas
tables or matplotlib axes, so a notebook stays a few lines per question.
``fold_table`` and ``fold_summary`` read a k-fold cross-validation multirun.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from src.utils.errors import UserInputError
from src.utils.run_status import read_status


def find_runs(log_dir: str | Path) -> list[Path]:
    """Every run directory under ``log_dir`` (single runs and multirun jobs), oldest first."""
    log_dir = Path(log_dir)
    if not log_dir.is_dir():
        raise UserInputError(f"{log_dir} is not a directory: point LOG_DIR at the logs/ folder.")
    return sorted(
        (p.parent.parent for p in log_dir.rglob(".hydra/config.yaml")),
        key=lambda run: run.stat().st_mtime,
    )


def _version(metrics_file: Path) -> int:
    number = metrics_file.parent.name.removeprefix("version_")
    return int(number) if number.isdigit() else -1


def load_metrics(run_dir: str | Path) -> pd.DataFrame:
    """The run's metric history, one row per logging step (epoch and step columns kept).

    The CSV logger writes one row per ``log`` call group; rows of the same step
    are merged so that train and validation values of an epoch share a row. A resumed
    run's logger starts a new ``csv/version_<n>``: the versions are read in order and
    joined, and where two hold the same step (an epoch stopped part-way and run again)
    the later one's values count.
    """
    files = sorted(Path(run_dir).glob("csv/version_*/metrics.csv"), key=_version)
    if not files:
        return pd.DataFrame()
    history = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    keys = [k for k in ("epoch", "step") if k in history]
    return history.groupby(keys, as_index=False).last() if keys else history


def _overrides(run_dir: Path) -> list[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    return list(yaml.safe_load(path.read_text()) or []) if path.is_file() else []


def run_summary(run_dir: str | Path) -> dict[str, Any]:
    """One row of ``list_runs``: identity, settings, status, final and best metrics."""
    run_dir = Path(run_dir)
    config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    overrides = _overrides(run_dir)
    experiment = next((o.split("=", 1)[1] for o in overrides if o.startswith("experiment=")), None)
    status = read_status(run_dir)  # a damaged file shows as status "damaged"
    # a tool's output inside another run (a LoRA run's merged/, a fuse run's <method>/<task>)
    # carries the source run's config, and no status of its own: it trained nothing
    outer = next((p for p in run_dir.parents if (p / ".hydra" / "config.yaml").is_file()), None)
    derived = outer is not None and not status
    row: dict[str, Any] = {
        "run_dir": str(run_dir),
        "task": _task_of(outer) if derived else _task_name(config),
        "multirun": "multiruns" in run_dir.parts,
        "experiment": experiment,
        "overrides": " ".join(overrides),
        "tags": config.get("tags"),
        "status": "derived" if derived else status.get("status", "unknown"),
    }
    if derived:
        row["derived_from"] = str(outer)
    if "error" in status:
        row["error"] = status["error"]
    history = load_metrics(run_dir)
    for column in history.columns.difference(["epoch", "step"]):
        values = history[column].dropna()
        if not values.empty:
            row[column] = values.iloc[-1]  # final value; *_best columns hold the best
    for key, value in status.get("metrics", {}).items():
        row.setdefault(key, value)
    return row


def _task_name(config: dict[str, Any]) -> str | None:
    """The config's ``task_name`` resolved: Hydra saves the config unresolved, and a tool's
    ``task_name: ${find}_find`` (lr_find.yaml) showed as written; as written where it does
    not resolve outside the run (``${hydra:...}``)."""
    from omegaconf import OmegaConf

    task = config.get("task_name")
    if not isinstance(task, str) or "${" not in task:
        return task
    resolved = OmegaConf.select(
        OmegaConf.create(config), "task_name", throw_on_resolution_failure=False
    )
    return resolved if resolved is not None else task


def _task_of(run_dir: Path) -> str | None:
    return _task_name(yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text()))


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def run_label(run_dir: str | Path, width: int = 60, leave_out: Any = ()) -> str:
    """A legend label that tells runs apart: the run's overrides but those in ``leave_out``
    (the ones every plotted run shares), its directory name when none is left, cut to
    ``width`` characters."""
    overrides = [o for o in _overrides(Path(run_dir)) if o not in leave_out]
    return _cut(" ".join(overrides) or Path(run_dir).name, width)


def list_runs(log_dir: str | Path = "logs") -> pd.DataFrame:
    """All runs under ``log_dir`` as a table, one row each (see ``run_summary``); no run
    yet (a fresh ``logs/``): no row, but the identity columns, so a notebook's
    ``table["multirun"]`` selects nothing instead of failing."""
    rows = [run_summary(run) for run in find_runs(log_dir)]
    if not rows:
        columns = ["run_dir", "task", "multirun", "experiment", "overrides", "tags", "status"]
        return pd.DataFrame(columns=columns).astype({"multirun": bool})
    return pd.DataFrame(rows)


def multirun_table(multirun_dir: str | Path, metric: str | None = None) -> pd.DataFrame:
    """The jobs of one multirun or sweep: one row per job, one column per override.

    Override values are parsed as YAML (numbers become numbers). The keys whose
    values differ between jobs, the swept ones, are in ``table.attrs["swept"]``.
    ``metric`` (for example ``val/acc_best``) sorts the table best first.
    """
    jobs = [run for run in find_runs(multirun_dir) if run.parent == Path(multirun_dir)]
    rows, keys = [], []
    for job in jobs:
        row = run_summary(job)
        for override in _overrides(job):
            key, _, value = override.lstrip("+~").partition("=")
            row[key] = yaml.safe_load(value) if value else None
            keys += [key] if key not in keys else []
        rows.append(row)
    table = pd.DataFrame(rows)
    if metric and metric in table:
        table = table.sort_values(metric, ascending=False, ignore_index=True)
    table.attrs["swept"] = [k for k in keys if table[k].astype(str).nunique() > 1]
    return table


def check_finished(unfinished: pd.DataFrame, multirun_dir: str | Path) -> None:
    """Stop, naming each job and why, unless every fold job finished."""
    if unfinished.empty:
        return
    why = []
    for _, job in unfinished.iterrows():
        error = job.get("error")
        detail = f": {error}" if isinstance(error, str) else ""
        why.append(f"{job['run_dir']} ({job['status']}{detail})")
    raise UserInputError(
        f"{len(why)} fold job(s) of {multirun_dir} did not finish, so their folds have no "
        f"final metrics: {'; '.join(why)}. Fix the cause and run those folds again."
    )


def fold_table(multirun_dir: str | Path) -> pd.DataFrame:
    """The folds of a k-fold multirun (``-m data.num_folds=K data.fold=range(K)``): one
    row per job (``multirun_table``), with its ``num_folds`` and ``fold`` columns.

    Keys swept besides the fold (``model.optimizer.lr=...``) make one
    cross-validation per setting: ``table.attrs["groups"]`` names them. Stops
    unless every job finished and each setting has each fold exactly once.
    """
    if not Path(multirun_dir).is_dir():
        raise UserInputError(
            f"{multirun_dir} is not a directory: give the directory of a multirun over the "
            "folds, logs/train/multiruns/<time>."
        )
    table = multirun_table(multirun_dir)
    if table.empty:
        raise UserInputError(
            f"{multirun_dir} holds no jobs (no <job>/.hydra/config.yaml): give the directory "
            "of a multirun, logs/train/multiruns/<time>."
        )
    folds = [
        (yaml.safe_load(Path(job, ".hydra", "config.yaml").read_text()).get("data") or {})
        for job in table["run_dir"]
    ]
    table["num_folds"] = [data.get("num_folds") for data in folds]
    table["fold"] = [data.get("fold") for data in folds]
    plain = table.loc[table["num_folds"].isna() | table["fold"].isna(), "run_dir"].tolist()
    if plain:
        raise UserInputError(
            f"{len(plain)} job(s) of {multirun_dir} are not folds of a cross-validation "
            f"(data.num_folds or data.fold unset), e.g. {plain[0]}. Run the folds as "
            "python src/train.py -m data.num_folds=5 'data.fold=range(5)'."
        )
    check_finished(table[table["status"] != "finished"], multirun_dir)
    table["num_folds"] = table["num_folds"].astype(int)
    table["fold"] = table["fold"].astype(int)
    groups = [k for k in table.attrs["swept"] if k not in ("data.fold", "data.num_folds")]
    table.attrs["groups"] = groups
    for setting, jobs in table.groupby(groups + ["num_folds"], dropna=False, sort=False):
        k = int(jobs["num_folds"].iloc[0])
        if sorted(jobs["fold"]) != list(range(k)):
            missing = sorted(set(range(k)) - set(jobs["fold"]))
            twice = sorted(jobs["fold"][jobs["fold"].duplicated()].unique().tolist())
            values = (v.item() if hasattr(v, "item") else v for v in setting)  # not np.float64
            named = ", ".join(f"{k}={v}" for k, v in zip(groups, values, strict=False))
            where = f" with {named}" if groups else ""
            raise UserInputError(
                f"The cross-validation in {multirun_dir}{where} has folds "
                f"{sorted(jobs['fold'].tolist())} of data.num_folds={k}"
                + (f": missing {missing}" if missing else "")
                + (f": {twice} more than once" if twice else "")
                + f". Run each fold once: -m data.num_folds={k} 'data.fold=range({k})'."
            )
    return table.sort_values([*groups, "num_folds", "fold"], ignore_index=True)


def fold_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (sample, ddof=1) across the folds of ``fold_table``'s
    table, of each final ``test/`` metric and each ``val/..._best``: one row per swept
    setting (the columns ``table.attrs["groups"]``) and statistic."""
    metrics = [
        c
        for c in table.columns
        if c.startswith("test/") or (c.startswith("val/") and c.endswith("_best"))
    ]
    if not metrics:
        raise UserInputError(
            "The fold jobs logged no test/ metric and no val/..._best metric: train with "
            "test=true and a model that tracks a best validation metric."
        )
    keys = [*table.attrs.get("groups", []), "num_folds"]
    rows = []
    for setting, jobs in table.groupby(keys, dropna=False, sort=False):
        values = jobs[metrics].astype(float)
        for statistic, computed in (("mean", values.mean()), ("std", values.std(ddof=1))):
            rows.append({**dict(zip(keys, setting, strict=True)), "statistic": statistic})
            rows[-1].update(computed.to_dict())
    summary = pd.DataFrame(rows)
    summary.attrs["metrics"] = metrics
    return summary


def plot_learning_curves(run_dirs: list[str | Path], metric: str = "val/acc", ax: Any = None):
    """``metric`` against epoch for several runs on one set of axes; runs with no history
    of it (their CSV log; logger=tensorboard, mlflow or wandb alone write none) are left
    out, named in a printed line, and none left is an error (not an empty plot). Each line
    is labelled with the overrides that set its run apart; those all runs share head the
    legend ("every run: ...")."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    curves = {}
    for run in run_dirs:
        history = load_metrics(run)
        if metric in history:
            curves[run] = history[["epoch", metric]].dropna().groupby("epoch")[metric].last()
    if not curves:
        raise UserInputError(
            f"none of the {len(run_dirs)} runs has {metric} in a CSV log (logger=csv or "
            "many_loggers writes one; tensorboard, mlflow or wandb alone do not): pass runs "
            "that have, or the metric they logged (val/acc for classification, val/r2 "
            "regression, val/score VIMH)."
        )
    left_out = [run for run in run_dirs if run not in curves]
    if left_out:
        print(
            f"left out {len(left_out)} of the {len(run_dirs)} runs, with no {metric} in a CSV "
            "log (logger=csv or many_loggers writes one): "
            + "; ".join(str(run) for run in left_out)
        )
    # the overrides every run shares (paths.log_dir=..., an experiment) go once into the
    # legend's title: first in each label, they filled its 60 characters and the labels
    # of runs that differ further on (the lr of a sweep's jobs) read the same
    overrides = [_overrides(Path(run)) for run in curves]
    shared = set.intersection(*map(set, overrides)) if len(curves) > 1 else set()
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    for run, curve in curves.items():
        label = run_label(run, leave_out=shared)
        ax.plot(curve.index, curve.values, marker="o", label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 0.2, 0.4, ...
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    common = " ".join(o for o in overrides[0] if o in shared)
    title = _cut(f"every run: {common}", 90) if common else None
    # below the axes: a legend inside them, as wide as its title, hid the curves' points
    ax.legend(
        fontsize=7, title=title, title_fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.15)
    )
    return ax


def load_run(
    run_dir: str | Path, checkpoint: str | Path | None = None, trust: bool = False
) -> tuple[Any, Any]:
    """The trained model (eval mode) and its data module, rebuilt from the run's config.

    ``checkpoint`` defaults to the run's best one. Loads with ``weights_only=True``;
    ``trust=True`` skips the allow-list of the run config's targets (your own runs).
    """
    from src.utils.training_run import TrainingRun

    run = TrainingRun.read(run_dir, checkpoint, trust=trust)  # allow-listed targets only
    datamodule = run.datamodule()
    return run.model(datamodule).eval(), datamodule


def recolour_parallel_coordinate(figure: Any, colorscale: str = "Viridis") -> Any:
    """Optuna's parallel-coordinate plot in ``colorscale``, its lines thicker: Optuna's
    scale starts at white, so on a white page the trial at that end of the objective is
    not seen. Optuna draws one line per trial (its objective value first in the line's
    ``customdata``) and the colour bar as a marker trace; it has no setting for the scale,
    hence this."""
    from plotly.colors import sample_colorscale

    lines = [t for t in figure.data if t.mode == "lines" and t.customdata is not None]
    values = [float(t.customdata[0][1]) for t in lines]
    if not values:
        return figure
    low, span = min(values), (max(values) - min(values)) or 1.0
    bar = next((t for t in figure.data if t.mode == "markers"), None)
    reverse = bool(bar is not None and bar.marker.reversescale)
    for trace, value in zip(lines, values, strict=True):
        share = (value - low) / span
        trace.line.color = sample_colorscale(colorscale, [1 - share if reverse else share])[0]
        trace.line.width = 2.5  # optuna's 1.2 is hard to see in viridis' light yellow end
    if bar is not None:
        bar.marker.colorscale = colorscale
    return figure


def open_mlflow(log_dir: str | Path = "logs") -> pd.DataFrame | None:
    """The runs in ``<log_dir>/mlflow/mlflow.db`` as a table, or None without one."""
    database = Path(log_dir) / "mlflow" / "mlflow.db"
    if not database.is_file():
        return None
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{database.resolve()}")
    return mlflow.search_runs(search_all_experiments=True)
