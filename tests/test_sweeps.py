"""Optuna searches (``hparams_search=...``, sweeper ``hydra/sweeper=optuna_study``).

Studies persist in SQLite and resume, failed trials are recorded while the
search goes on (up to a failure budget), samplers switch by one override, and a
short TPE search on digits does as well as the default configuration. Every
search config composes in ``test_configs.py``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import hydra
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import CmaEsSampler, NSGAIISampler, RandomSampler, TPESampler
from optuna.trial import TrialState

from hydra_plugins.optuna_study_sweeper._space import grid_choices, space_of
from hydra_plugins.optuna_study_sweeper._study_sweep import (
    StudySweep,
    SweepError,
    build_sampler,
    prepare_storage,
)
from tests.conftest import compose_config, run_cli

QUIET = ["extras.print_config=false", "callbacks.rich_progress_bar=null"]
# one epoch of four batches: trials of about a second
TINY = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=4",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "callbacks=none",
    "extras.print_config=false",
]


def load_study(log_dir: Path, name: str) -> optuna.Study:
    """The study ``name`` in the search configs' default storage under ``log_dir``."""
    return optuna.load_study(study_name=name, storage=f"sqlite:///{log_dir}/optuna/optuna.db")


def states(study: optuna.Study) -> list[str]:
    return [trial.state.name for trial in study.trials]


def test_search_config_points_at_a_persistent_study(tmp_path: Path) -> None:
    cfg = compose_config("train.yaml", ["hparams_search=digits_optuna"], tmp_path)
    sweeper = cfg.hydra.sweeper
    assert sweeper.study_name == "digits_optuna"  # named after the search config
    assert sweeper.storage == f"sqlite:///{tmp_path}/optuna/optuna.db"
    assert not (tmp_path / "optuna").exists()
    # the folder is made before Optuna opens the file (SQLite would not make it)
    url = prepare_storage(sweeper.storage)
    assert url == f"sqlite:///{tmp_path / 'optuna' / 'optuna.db'}"
    assert (tmp_path / "optuna").is_dir()
    optuna.create_study(study_name="x", storage=url)
    assert (tmp_path / "optuna" / "optuna.db").is_file()
    # a server's URL is kept, with psycopg 3 as its driver (SQLAlchemy's default is psycopg2)
    server = prepare_storage("postgresql://user:pw@host:5432/optuna")
    assert server == "postgresql+psycopg://user:pw@host:5432/optuna"


def draws(sampler: optuna.samplers.BaseSampler) -> list[float]:
    study = optuna.create_study(sampler=sampler)
    return [study.ask().suggest_float("x", 0.0, 1.0) for _ in range(3)]


@pytest.mark.filterwarnings("error::FutureWarning")  # Optuna's deprecations are FutureWarnings
@pytest.mark.parametrize(
    "name, kind",
    [
        ("tpe", TPESampler),
        ("random", RandomSampler),
        ("cmaes", CmaEsSampler),
        ("nsgaii", NSGAIISampler),
    ],
)
def test_sampler_override_is_seeded_and_moves_on_when_resumed(
    name: str, kind: type, tmp_path: Path
) -> None:
    overrides = ["hparams_search=digits_optuna", f"hydra/sweeper/sampler={name}"]
    sweeper = compose_config("train.yaml", overrides, tmp_path).hydra.sweeper
    assert sweeper.sampler.seed is None  # the plugin's configs leave it to hydra.sweeper.seed
    first, again, resumed = (
        build_sampler(sweeper.sampler, sweeper.seed, offset=n) for n in (0, 0, 5)
    )
    assert isinstance(first, kind)
    assert draws(first) == draws(again)  # seeded: the same search twice
    assert draws(resumed) != draws(first)  # a study with 5 trials gets new points


@pytest.mark.filterwarnings("error::FutureWarning")
def test_search_space_uses_current_distributions() -> None:
    """The plugin's override grammar, mapped to Optuna 3+'s distribution classes."""
    searched, fixed = space_of(
        [
            "a=interval(0.1, 1.0)",
            "b=tag(log, interval(0.001, 0.1))",
            "c=int(interval(16, 128))",
            "d=tag(log, int(interval(4, 256)))",
            "e=range(1, 10, 3)",
            "f=choice(adam, sgd)",
            "g=5",
        ]
    )
    assert searched == {
        "a": FloatDistribution(0.1, 1.0),
        "b": FloatDistribution(0.001, 0.1, log=True),
        "c": IntDistribution(16, 128),
        "d": IntDistribution(4, 256, log=True),
        "e": IntDistribution(1, 7, step=3),  # Hydra's range stops before 10: 1, 4, 7
        "f": CategoricalDistribution(["adam", "sgd"]),
    }
    assert fixed == {"g": "5"}
    assert grid_choices(searched["e"]) == [1, 4, 7]


def test_grid_sampler_takes_finite_values_only(tmp_path: Path) -> None:
    cfg = compose_config(
        "train.yaml", ["hparams_search=digits_optuna", "hydra/sweeper/sampler=grid"], tmp_path
    )
    sweep = hydra.utils.instantiate(cfg.hydra.sweeper).sweeper
    with pytest.raises(SweepError, match=r"model\.optimizer\.lr.*are intervals"):
        sweep.grid([])
    sweep.params = None  # the space from the command line alone
    grid = sweep.grid(
        ["data.batch_size=choice(16,32)", "model/optimizer=choice(adam,sgd)", "seed=3"]
    )
    assert {k: list(v) for k, v in grid.items()} == {
        "data.batch_size": [16, 32],
        "model/optimizer": ["adam", "sgd"],
    }


def test_failure_budget_counts_over_the_whole_sweep() -> None:
    """The sweep stops once more than max_failure_rate x n_trials of its trials failed;
    a trial asked for but not launched is closed as failed, with the reason."""
    settings = dict(sampler_config=None, seed=0, direction="maximize", storage=None,
                    study_name=None, n_trials=4, n_jobs=1)  # fmt: skip
    with pytest.raises(SweepError, match="max_failure_rate=1.5"):
        StudySweep(max_failure_rate=1.5, **settings)
    sweep = StudySweep(max_failure_rate=0.25, **settings)  # one failure in four trials
    study = optuna.create_study()
    study.tell(study.ask(), state=TrialState.FAIL)  # another sweep's failure does not count

    def next_trial() -> optuna.trial.Trial:
        batch = [study.ask()]
        sweep.start(study, batch, {}, {})  # the loop hands over each batch before launch
        return batch[0]

    study.tell(next_trial(), 0.9)
    study.tell(next_trial(), state=TrialState.FAIL)
    study.tell(next_trial(), state=TrialState.FAIL)  # launched: one failure was within budget
    with pytest.raises(SweepError, match=r"2 of this sweep's trials failed.*\[2, 3\]"):
        next_trial()
    assert states(study) == ["FAIL", "COMPLETE", "FAIL", "FAIL", "FAIL"]
    assert "the sweep stopped" in study.trials[-1].user_attrs["not_run"]


def test_the_closing_line_names_the_best_trial_and_where_it_ran(caplog) -> None:
    """It gave parameters and value only: now the trial, its job and run directory, and,
    when an earlier sweep of the study holds the best, that it is the study's best."""
    settings = dict(sampler_config=None, seed=0, direction="maximize", storage=None,
                    study_name=None, n_trials=2, n_jobs=1, max_failure_rate=0.0)  # fmt: skip
    study = optuna.create_study(direction="maximize")
    earlier = study.ask()
    earlier.set_user_attr("run_dir", "/runs/old/0")
    study.tell(earlier, 0.99)
    sweep = StudySweep(**settings)
    for value in (0.5, 0.9):
        trial = study.ask()
        sweep.start(study, [trial], {}, {})
        trial.set_user_attr("run_dir", f"/runs/new/{trial.number - 1}")
        study.tell(trial, value)
    with caplog.at_level("INFO"):
        sweep.write_results(study)
    assert (
        "(trial 0: the best of study" in caplog.text and "earlier one, /runs/old/0)" in caplog.text
    )
    sweep = StudySweep(**settings)  # a new study: its best is this sweep's second job
    fresh = optuna.create_study(direction="maximize")
    for value in (0.5, 0.9):
        trial = fresh.ask()
        sweep.start(fresh, [trial], {}, {})
        trial.set_user_attr("run_dir", f"/runs/new/{trial.number}")
        fresh.tell(trial, value)
    caplog.clear()
    with caplog.at_level("INFO"):
        sweep.write_results(fresh)
    assert "best value: 0.9 (trial 1, job 1 of this sweep, /runs/new/1)" in caplog.text


def test_the_closing_line_names_the_pareto_trials(caplog) -> None:
    """It said only "Number of Pareto solutions: 2": now which trials, and their jobs."""
    sweep = StudySweep(sampler_config=None, seed=0, direction=["maximize", "minimize"],
                       storage=None, study_name=None, n_trials=3, n_jobs=1,
                       max_failure_rate=0.0)  # fmt: skip
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.tell(study.ask(), [0.9, 10])  # an earlier sweep's, on the front
    for values in ([0.5, 20], [0.95, 30]):  # dominated by trial 0; on the front
        trial = study.ask()
        sweep.start(study, [trial], {}, {})
        study.tell(trial, values)
    with caplog.at_level("INFO"):
        sweep.write_results(study)
    assert "Pareto solutions: 2: trial 0 (an earlier sweep), trial 2 (job 1)" in caplog.text


def test_the_summary_table_shows_every_objective_of_a_pareto_sweep(tmp_path: Path) -> None:
    """digits_pareto_optuna's second objective, model/params/total, is returned by each job
    but logged as no metric: its column in the sweep's table was empty for every job."""
    done = run_cli(
        "train.py",
        "hparams_search=digits_pareto_optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=1",
        f"paths.log_dir={tmp_path}",
        *TINY,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    study = load_study(tmp_path, "digits_pareto_optuna")
    sizes = sorted(int(t.values[1]) for t in study.trials)
    # its objectives named in the study: optuna-dashboard's axes say so, not "Objective 0"
    assert study.metric_names == ["val/acc_best", "model/params/total"]
    table = done.stdout + done.stderr
    header = next(line for line in table.splitlines() if line.startswith("| job |"))
    column = [c.strip() for c in header.split("|")].index("model/params/total")
    rows = [line.split("|") for line in table.splitlines() if line.startswith("| ")][1:]
    shown = sorted(int(float(r[column])) for r in rows if r[column].strip())
    assert len(sizes) == 2 and shown == sizes


def test_failed_trials_are_recorded_and_the_search_goes_on(tmp_path: Path) -> None:
    """A grid where one trial diverges (NaN loss) and two are refused (UserInputError):
    three failed trials of four, within max_failure_rate=0.75, so the sweep succeeds."""
    done = run_cli(
        "train.py",
        "hparams_search=digits_optuna",
        "hydra/sweeper/sampler=grid",
        "hydra.sweeper.params=null",
        "data.batch_size=choice(32,1)",  # 1: BatchNorm cannot train on it (UserInputError)
        "model.optimizer.lr=choice(0.01,1e10)",  # 1e10: SGD diverges, val/loss is NaN
        "model/optimizer=sgd",
        "optimized_metric=val/loss",
        "hydra.sweeper.direction=minimize",
        "hydra.sweeper.max_failure_rate=0.75",
        f"paths.log_dir={tmp_path}",
        *TINY,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    study = load_study(tmp_path, "digits_optuna")
    outcome = {
        (t.params["data.batch_size"], t.params["model.optimizer.lr"]): t.state for t in study.trials
    }
    assert outcome == {
        (32, 0.01): TrialState.COMPLETE,
        (32, 1e10): TrialState.FAIL,
        (1, 0.01): TrialState.FAIL,
        (1, 1e10): TrialState.FAIL,
    }
    assert math.isfinite(study.best_value) and study.best_params["model.optimizer.lr"] == 0.01
    statuses = [
        json.loads(p.read_text()) for p in tmp_path.glob("train/multiruns/*/*/run_status.json")
    ]
    refused = [s for s in statuses if s["status"] == "failed"]
    assert len(statuses) == 4 and len(refused) == 2
    assert all("BatchNorm" in s["error"] for s in refused)


@pytest.mark.slow
def test_a_search_whose_trials_all_fail_stops_with_the_reason(tmp_path: Path) -> None:
    """The last trial's failure exceeds the budget: the sweep says so (not Optuna's
    "no completed trial" from the plugin's closing summary)."""
    done = run_cli(
        "train.py",
        "hparams_search=digits_optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.max_failure_rate=0.5",  # one failure allowed
        "data.batch_size=1",  # fixed for every trial: BatchNorm refuses it
        f"paths.log_dir={tmp_path}",
        *TINY,
    )
    assert done.returncode == 1
    assert "Study digits_optuna: 2 of this sweep's trials failed" in done.stderr
    assert "max_failure_rate=0.5 of 2 trials" in done.stderr
    assert states(load_study(tmp_path, "digits_optuna")) == ["FAIL", "FAIL"]


@pytest.mark.slow
def test_study_persists_and_a_second_run_adds_trials(tmp_path: Path) -> None:
    command = [
        "hparams_search=digits_optuna",
        "hydra.sweeper.n_trials=2",
        "debug=fdr",
        "extras.print_config=false",
        f"paths.log_dir={tmp_path}",
    ]
    seen: list[tuple[dict, float]] = []
    for total in (2, 4):
        done = run_cli("train.py", *command)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        study = load_study(tmp_path, "digits_optuna")
        assert states(study) == ["COMPLETE"] * total
        trials = [(t.params, t.value) for t in study.trials]
        assert trials[: len(seen)] == seen  # nothing lost
        seen = trials
    assert seen[2][0] != seen[0][0] and seen[3][0] != seen[1][0]  # new points, not repeats


@pytest.mark.slow
def test_tpe_search_on_digits_does_as_well_as_the_default(tmp_path: Path) -> None:
    """12 TPE trials of 3 epochs find a configuration at least as good as the default
    one (minus 0.01 validation accuracy); the same command again adds 12 trials."""
    epochs = "trainer.max_epochs=3"
    default = run_cli(
        "train.py", "experiment=digits_mlp", epochs, f"paths.log_dir={tmp_path}", *QUIET
    )
    assert default.returncode == 0, default.stdout[-4000:] + default.stderr[-4000:]
    (status,) = tmp_path.glob("train/runs/*/run_status.json")
    default_acc = json.loads(status.read_text())["metrics"]["val/acc_best"]

    search = ["hparams_search=digits_optuna", "hydra.sweeper.n_trials=12", epochs, *QUIET]
    done = run_cli("train.py", *search, f"paths.log_dir={tmp_path}")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    study = load_study(tmp_path, "digits_optuna")
    assert states(study) == ["COMPLETE"] * 12
    print(f"default val/acc_best {default_acc:.4f}, search best {study.best_value:.4f}")
    assert study.best_value >= default_acc - 0.01
    first = [(t.params, t.value) for t in study.trials]
    assert len({value for _, value in first}) > 3  # the parameters reach the trials

    again = run_cli("train.py", *search, f"paths.log_dir={tmp_path}")
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    study = load_study(tmp_path, "digits_optuna")
    assert states(study) == ["COMPLETE"] * 24
    assert [(t.params, t.value) for t in study.trials[:12]] == first
    assert study.best_value >= max(value for _, value in first)


@pytest.mark.slow
def test_readme_grid_runs_after_a_search_of_digits_optuna(tmp_path: Path) -> None:
    """The README's grid line, run after the searches before it (digits_optuna searched
    three optimizers): in its own study it runs the 4 points and says it adds 4; in
    digits_optuna it stops before any trial, naming the key."""
    from tests.test_readme import readme_commands

    study = optuna.create_study(
        study_name="digits_optuna",
        storage=prepare_storage(f"sqlite:///{tmp_path}/optuna/optuna.db"),
        direction="maximize",
    )
    study.add_trial(
        optuna.trial.create_trial(
            params={"model/optimizer": "adamw"},
            distributions={"model/optimizer": CategoricalDistribution(["adam", "adamw", "sgd"])},
            value=0.9,
        )
    )
    (line,) = [c for c in readme_commands() if "hydra/sweeper/sampler=grid" in c]
    words = line.split()[2:]  # after "python src/train.py"
    assert "hydra.sweeper.study_name=digits_grid" in words
    own = [w for w in words if not w.startswith("hydra.sweeper.study_name=")]
    clash = run_cli("train.py", *[w.strip("'") for w in own], f"paths.log_dir={tmp_path}", *TINY)
    assert clash.returncode == 1
    assert "already searched model/optimizer over other values" in clash.stderr
    grid = optuna.create_study(
        study_name="digits_grid", storage=study._storage, direction="maximize"
    )
    grid.tell(grid.ask(), 0.5)  # one earlier trial (no parameters): "holds 1 trials"
    done = run_cli("train.py", *[w.strip("'") for w in words], f"paths.log_dir={tmp_path}", *TINY)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Study digits_grid holds 1 trials: adding 4." in done.stdout + done.stderr
    grid = load_study(tmp_path, "digits_grid")
    ran = [t for t in grid.trials if t.params]
    points = {(t.params["model/optimizer"], t.params["data.batch_size"]) for t in ran}
    assert points == {(o, b) for o in ("adam", "sgd") for b in (32, 64)}
    assert [t.state.name for t in ran] == ["COMPLETE"] * 4
