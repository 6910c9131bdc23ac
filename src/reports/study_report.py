"""Report on an Optuna study, and train with the parameters it found.

``python src/reports/study_report.py hparams_search=digits_optuna`` (``make study-report
STUDY=digits_optuna``) opens the study that search config names
(``hydra.sweeper.study_name`` in ``hydra.sweeper.storage``) and writes into
``logs/optuna/<study>/``:

- ``overrides.txt``: the best trial as one ready-to-run line (printed too),
  ``python src/train.py experiment=digits_mlp model.optimizer.lr=...``. The line
  holds all the trial ran with: the overrides its sweep was started with (the
  sweeper keeps them in each trial's user attributes), its parameters, and what
  the search config itself set (its base experiment, any value). The line is
  composed and checked to give the trial's configuration, key for key;
- ``experiment/<study>_best.yaml``: the same as an experiment config, to copy
  into ``configs/experiment/`` or to use where it is (the line is printed);
- HTML plots (plotly; ``plotly.min.js`` once beside them, so they open offline):
  optimization history, parameter importances, slices, parallel coordinates,
  contours, and ``index.html``, which links them all and lists every trial with
  its state, values, run directory and MLflow run id (``src/reports/study_plots.py``);
- ``report.json``: trial counts, directions, the best trial, the importances, the runs.

A multi-objective study has no single best: the report holds its Pareto front
(one line and one experiment per trial on it, ``pareto_front.html``, and each
plot per objective). ``trial=N`` adds trial N as the chosen trial: ``trial<N>.txt``,
``experiment/<study>_trial<N>.yaml``, ``chosen`` in ``report.json`` and index.html; the best
trial's files stay the best's. ``train_best=true`` (``make train-best``) then runs the
chosen trial's line (else the best's) with ``src/train.py``.

Parameter importances are fANOVA's (Optuna's default evaluator): the share of
the objective's variance each parameter explains, in a random forest fitted to
the complete trials.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import rootutils
from omegaconf import DictConfig, OmegaConf

ROOT = rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.reports.overrides import (  # noqa: E402
    experiment_yaml,
    trial_overrides,
)
from src.reports.study_plots import (  # noqa: E402
    IMPORTANCE,
    importances,
    slug,
    trial_runs,
    write_index,
    write_plots,
)
from src.utils.atomic import write_json, write_text  # noqa: E402
from src.utils.entry_point import entry_point  # noqa: E402
from src.utils.errors import UserInputError  # noqa: E402

CONFIGS = ROOT / "configs"


def open_study(storage: str | None, study_name: str | None, search: str) -> Any:
    """The study, or a UserInputError naming what is missing and the studies there are."""
    import optuna
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DatabaseError

    if not storage:
        raise UserInputError(
            f"hparams_search={search} keeps its study in memory (hydra.sweeper.storage is "
            "null), so there is nothing to report. Give the search a storage "
            "(hydra.sweeper.storage=sqlite:///logs/optuna/optuna.db) and run it again."
        )
    from hydra_plugins.optuna_study_sweeper._storage import (
        open_storage,
        prepare_storage,
        printable_url,
    )

    url = make_url("journal://" if str(storage).startswith("journal://") else str(storage))
    shown = printable_url(storage)
    if url.get_backend_name() == "sqlite" and not Path(url.database or ":memory:").is_file():
        raise UserInputError(
            f"No study database at {url.database} (hydra.sweeper.storage={shown}). Run the "
            f"search first (python src/train.py hparams_search={search}), or give the "
            "storage it used: hydra.sweeper.storage=<url>."
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # as the sweeper opens it: journal files, psycopg, the old-schema message
    opened = open_storage(prepare_storage(str(storage)))
    try:
        summaries = optuna.get_all_study_summaries(storage=opened)
    except DatabaseError as error:
        raise UserInputError(f"{shown} is not a readable Optuna database: {error}") from error
    studies = {s.study_name: s.n_trials for s in summaries}
    if study_name not in studies:
        there = ", ".join(f"{name} ({n} trials)" for name, n in sorted(studies.items()))
        raise UserInputError(
            f"No study named {study_name} in {shown}. The studies there: {there or 'none'}. "
            "Report one with hparams_search=<its search config>, or hydra.sweeper.study_name=<name>."
        )
    return optuna.load_study(study_name=study_name, storage=opened)


def count_states(study: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name.lower()] = counts.get(trial.state.name.lower(), 0) + 1
    return counts


def best_trials(study: Any, counts: dict[str, int]) -> list[Any]:
    """The best trial, or the Pareto front of a multi-objective study."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        states = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no trials"
        raise UserInputError(
            f"Study {study.study_name} has no complete trial ({states}). Failed trials say why "
            "in their run directory's run_status.json; run the search (again) to add trials."
        )
    if len(study.directions) == 1:
        return [study.best_trial]
    return sorted(study.best_trials, key=lambda t: t.number)


def asked_trial(study: Any, number: int) -> Any:
    """Trial ``number`` (``trial=N``), which must be complete."""
    from optuna.trial import TrialState

    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if trial is None or trial.state != TrialState.COMPLETE:
        what = "no such trial" if trial is None else f"it is {trial.state.name.lower()}"
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        raise UserInputError(
            f"trial={number}: {what} in study {study.study_name}. Complete trials: "
            f"{[t.number for t in complete]}."
        )
    return trial


def objective_names(cfg: DictConfig, n: int) -> list[str]:
    metric = cfg.get("optimized_metric")
    names = list(metric) if OmegaConf.is_list(metric) else [metric]
    return (
        [str(m) for m in names]
        if len(names) == n and all(names)
        else [f"objective {i}" for i in range(n)]
    )


def trial_experiment(
    trial: Any,
    study_name: str,
    search: str,
    names: list[str],
    directions: list[str],
    out: Path,
    one_best: bool,
) -> dict[str, Any]:
    """Write ``<out>/experiment/<name>.yaml`` for one trial; return its entry of the report."""
    overrides, composed = trial_overrides(trial, search)
    name = slug(study_name) + ("_best" if one_best else f"_trial{trial.number}")
    scores = ", ".join(
        f"{n} = {v:.6g} ({d})" for n, v, d in zip(names, trial.values, directions, strict=True)
    )
    header = [
        f"Optuna study {study_name}, trial {trial.number}: {scores}.",
        "Written by src/reports/study_report.py. Use it where it is:",
        f"  python src/train.py experiment={name} "
        + shlex.quote(f"hydra.searchpath=[file://{out.resolve()}]"),
        f"or copy it into configs/experiment/ and run: python src/train.py experiment={name}",
    ]
    yaml_text = experiment_yaml(overrides, set(composed.hydra.runtime.choices), header)
    write_text(out / "experiment" / f"{name}.yaml", yaml_text)
    return {
        "number": trial.number,
        "values": trial.values,
        "params": trial.params,
        "overrides": overrides,
        "command": "python src/train.py " + " ".join(map(shlex.quote, overrides)),
        "experiment": name,
        "experiment_yaml": str(out / "experiment" / f"{name}.yaml"),
    }


def study_report(cfg: DictConfig) -> dict[str, Any]:
    """Write the report of the study ``cfg`` names; return what ``report.json`` holds."""
    from hydra.core.hydra_config import HydraConfig

    from hydra_plugins.optuna_study_sweeper._storage import printable_url

    hydra_cfg = HydraConfig.get()
    search = hydra_cfg.runtime.choices.get("hparams_search")
    if not search:
        options = sorted(p.stem for p in (CONFIGS / "hparams_search").glob("*.yaml"))
        raise UserInputError(
            "Name the search to report on: hparams_search=<name> (make study-report "
            f"STUDY=<name>). The search configs: {', '.join(options)}."
        )
    storage, study_name = hydra_cfg.sweeper.get("storage"), hydra_cfg.sweeper.get("study_name")
    study = open_study(storage, study_name, search)
    counts = count_states(study)
    trials = best_trials(study, counts)
    number = cfg.get("trial")
    asked = asked_trial(study, number) if number is not None else None
    if cfg.get("train_best") and asked is None and len(trials) > 1:
        front = "; ".join(f"trial {t.number}: {t.values}" for t in trials)
        raise UserInputError(
            f"Study {study_name} optimises {len(study.directions)} objectives: its Pareto front "
            f"has {len(trials)} trials ({front}). Pick one to train: trial=<number> "
            f"(make train-best STUDY={search} TRIAL=<number>)."
        )
    names = objective_names(cfg, len(study.directions))
    out = Path(cfg.report_dir or Path(cfg.paths.log_dir) / "optuna" / slug(study_name))
    (out / "experiment").mkdir(parents=True, exist_ok=True)

    directions = [d.name.lower() for d in study.directions]
    one_best = len(study.directions) == 1
    best = [
        trial_experiment(trial, study_name, search, names, directions, out, one_best)
        for trial in trials
    ]
    # trial=N: its own files beside the best's, never in their place
    chosen = asked and trial_experiment(asked, study_name, search, names, directions, out, False)
    ranked = importances(study, names, cfg.importance_seed)
    plots = write_plots(study, out, names, cfg.importance_seed, ranked[names[0]] is not None)
    runs = trial_runs(study)
    lines = [f"# trial {b['number']}: {b['values']}\n{b['command']}\n" for b in best]
    write_text(out / "overrides.txt", "".join(lines))
    if chosen:
        line = f"# trial {chosen['number']}: {chosen['values']}\n{chosen['command']}\n"
        write_text(out / f"trial{chosen['number']}.txt", line)
    report = {
        "study": study_name,
        "storage": printable_url(storage),
        "search": search,
        "directions": directions,
        "objectives": names,
        "trials": counts,
        "pareto_front": len(study.directions) > 1,
        "best": best,
        "chosen": chosen,
        "importance": IMPORTANCE,
        "importances": ranked,
        "plots": plots,
        "index": "index.html",
        "runs": runs,
        "report_dir": str(out),
    }
    write_index(out, report)
    write_json(out / "report.json", report)
    print_report(report, out)
    return report


def print_report(report: dict[str, Any], out: Path) -> None:
    states = ", ".join(f"{n} {state}" for state, n in sorted(report["trials"].items()))
    print(f"Study {report['study']} ({report['storage']}): {states}")
    if report["pareto_front"]:
        print(f"Pareto front of {', '.join(report['objectives'])}: {len(report['best'])} trials")
    for best in report["best"]:
        scores = ", ".join(
            f"{n} = {v:.6g}" for n, v in zip(report["objectives"], best["values"], strict=True)
        )
        print(f"Trial {best['number']}: {scores}")
        print(f"  {best['command']}")
        print(
            f"  python src/train.py experiment={best['experiment']} "
            + shlex.quote(f"hydra.searchpath=[file://{out.resolve()}]")
        )
    for name, ranked in report["importances"].items():
        if ranked is None:
            print("Parameter importances: need 2 complete trials or more")
        else:
            shares = ", ".join(f"{p} {v:.2f}" for p, v in ranked.items())
            print(f"Parameter importances for {name} ({IMPORTANCE}): {shares}")
    chosen = report["chosen"]
    if chosen:
        print(f"Chosen trial {chosen['number']} (trial={chosen['number']}): {chosen['values']}")
        print(f"  {chosen['command']}  (also in trial{chosen['number']}.txt)")
    print(
        f"Report: {out / 'index.html'} ({len(report['plots'])} plots, overrides.txt, experiment/)"
    )


def override_parts(override: str) -> tuple[str, str]:
    """(prefix, key) of a command-line override: ``+trainer.x=3`` -> ``("+", "trainer.x")``."""
    from src.utils.loggers import override_key

    return override[: len(override) - len(override.lstrip("+~"))], override_key(override)


def with_train_args(overrides: list[str], train_args: list[str]) -> list[str]:
    """The trial's overrides, each key ``train_args`` sets again replaced by its value there.

    Appended alone, ``+trainer.limit_train_batches=2`` after the trial's own
    ``+trainer.limit_train_batches=3`` stopped Hydra ("An item is already at ..."), and
    without its ``+`` it could not be written either way; a key the trial added keeps
    being added (``+``), and ``~key`` of a key the trial added leaves both out."""
    added = {key: prefix for prefix, key in map(override_parts, overrides)}
    given = {override_parts(a)[1] for a in train_args}
    merged = [o for o in overrides if override_parts(o)[1] not in given]
    for arg in train_args:
        prefix, key = override_parts(arg)
        trial_prefix = added.get(key)
        if trial_prefix == "+" and prefix == "~":
            continue  # the key is the trial's own addition: without it, it is not there
        if trial_prefix == "+" and prefix == "":
            arg = "+" + arg
        merged.append(arg)
    return merged


def train_with(best: dict[str, Any], train_args: str) -> None:
    """Run ``src/train.py`` with the trial's overrides (and ``train_args``); exit as it did."""
    overrides = with_train_args(list(best["overrides"]), shlex.split(train_args or ""))
    command = [sys.executable, str(ROOT / "src" / "train.py"), *overrides]
    print("Training: python src/train.py " + " ".join(map(shlex.quote, command[2:])), flush=True)
    code = subprocess.run(command, check=False).returncode
    if code:
        raise SystemExit(code)


@entry_point("study_report.yaml", extras=False)  # a report: no config tree, no Lightning
def main(cfg: DictConfig) -> None:
    report = study_report(cfg)
    if cfg.get("train_best"):
        train_with(report["chosen"] or report["best"][0], cfg.get("train_args"))


if __name__ == "__main__":
    main()
