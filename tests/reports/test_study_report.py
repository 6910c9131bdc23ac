"""make study-report / train-best: the report of a study a real sweep made, its override line
and experiment YAML (each composes to the best trial's own config), its plots, the Pareto
front of a multi-objective study, and every way of naming a study that is not there."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from src.reports.overrides import (
    compose_train,
    experiment_yaml,
    job_part,
    override_value,
    trial_overrides,
)
from src.reports.study_report import study_report, with_train_args
from src.utils.errors import UserInputError
from tests.conftest import compose_config, run_cli

SEARCH = "digits_optuna"
QUIET = ["extras.print_config=false"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A real 4-trial TPE search of the digits MLP (one batch each of train/val/test)."""
    logs = tmp_path_factory.mktemp("sweep")
    storage = f"sqlite:///{logs}/optuna.db"
    done = run_cli(
        "train.py",
        f"hparams_search={SEARCH}",
        "debug=fdr",
        "hydra.sweeper.n_trials=4",
        f"hydra.sweeper.storage={storage}",
        f"paths.log_dir={logs}",
        *QUIET,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (multirun,) = (logs / "debug" / "multiruns").iterdir()
    return {"logs": logs, "storage": storage, "multirun": multirun}


def report_config(sweep: dict, tmp_path: Path, *overrides: str):
    return compose_config(
        "study_report.yaml",
        [f"hparams_search={SEARCH}", f"hydra.sweeper.storage={sweep['storage']}", *overrides],
        tmp_path,
    )


def test_report_of_a_real_sweep(sweep: dict, tmp_path: Path, capsys) -> None:
    report = study_report(report_config(sweep, tmp_path))
    out = tmp_path / "optuna" / SEARCH
    assert Path(report["report_dir"]) == out

    # the best trial, as Optuna and the sweeper's own summary have it
    study = optuna.load_study(study_name=SEARCH, storage=sweep["storage"])
    assert report["trials"] == {"complete": 4}
    (best,) = report["best"]
    assert best["number"] == study.best_trial.number
    assert best["params"] == study.best_trial.params
    summary = OmegaConf.load(sweep["multirun"] / "optimization_results.yaml")
    assert best["values"] == [summary.best_value]
    assert best["params"] == summary.best_params

    # the printed line is the saved one, and it composes to what the best trial ran
    printed = capsys.readouterr().out
    assert best["command"] in printed
    assert (out / "overrides.txt").read_text().splitlines()[1] == best["command"]
    words = shlex.split(best["command"])
    assert words[:2] == ["python", "src/train.py"]
    line = compose_train(words[2:])
    for key, value in best["params"].items():
        if "/" in key:  # a group: model/optimizer=adamw
            assert line.hydra.runtime.choices[key] == value
        else:
            assert OmegaConf.select(line, key) == value
    assert line.hydra.runtime.choices.experiment == "digits_mlp"  # the search's base experiment
    ran = OmegaConf.to_container(
        OmegaConf.load(sweep["multirun"] / str(best["number"]) / ".hydra" / "config.yaml")
    )
    assert job_part(line) == ran

    # the experiment YAML composes with train.yaml to the same config
    yaml_path = out / "experiment" / f"{SEARCH}_best.yaml"
    assert yaml_path.read_text().startswith("# @package _global_\n")
    from_yaml = compose_train([f"experiment={SEARCH}_best", f"hydra.searchpath=[file://{out}]"])
    assert job_part(from_yaml) == ran

    # importances of every searched parameter (a random forest's shares sum to 1)
    ranked = report["importances"]["val/acc_best"]
    assert set(ranked) == set(best["params"])
    assert sum(ranked.values()) == pytest.approx(1.0)

    # the plots, with the trials' data in them, and plotly.js once beside them
    assert sorted(report["plots"]) == [
        "contour.html",
        "intermediate_values.html",  # the jobs reported val/acc_best every epoch
        "optimization_history.html",
        "parallel_coordinate.html",
        "param_importances.html",
        "slice.html",
    ]
    # one index page links every plot, and every trial to the run the sweep made for it
    index = (out / "index.html").read_text()
    assert all(f'href="{plot}"' in index for plot in report["plots"])
    assert set(report["runs"]) == {str(t.number) for t in study.trials}
    for number, run in report["runs"].items():
        assert Path(run["run_dir"]) == sweep["multirun"] / number
        assert json.loads((Path(run["run_dir"]) / "run_status.json").read_text())["status"]
        assert Path(run["run_dir"]).resolve().as_uri() in index
    for plot in report["plots"]:
        html = (out / plot).read_text()
        assert len(html) > 5000 and 'src="plotly.min.js"' in html, plot
        assert SEARCH in html
    slices = (out / "slice.html").read_text().replace("\\u002f", "/")  # plotly escapes "/"
    steps = (out / "intermediate_values.html").read_text().replace("\\u002f", "/")
    assert '"text":"val/acc_best after the epoch"' in steps and '"text":"epoch"' in steps
    for key in best["params"]:
        assert key in slices
    assert (out / "plotly.min.js").stat().st_size > 1_000_000
    assert json.loads((out / "report.json").read_text()) == report


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # add_trial
def test_pareto_front_of_a_multi_objective_study(sweep: dict, tmp_path: Path) -> None:
    """The sweep's real trials, scored on accuracy (maximize) and the net's width."""
    trials = optuna.load_study(study_name=SEARCH, storage=sweep["storage"]).trials
    scored = {
        t.number: (t.value, sum(v for k, v in t.params.items() if k.startswith("model.net.lin")))
        for t in trials
    }
    # narrow nets are better, unless the most accurate is also the narrowest: then wide ones
    # are, so that the front holds two trials at least
    most_accurate = max(scored.values())
    sign = 1 if most_accurate[1] > min(w for _, w in scored.values()) else -1
    storage = f"sqlite:///{tmp_path}/pareto.db"
    study = optuna.create_study(
        study_name="digits_pareto",
        storage=storage,
        directions=["maximize", "minimize" if sign == 1 else "maximize"],
    )
    for trial in trials:
        study.add_trial(
            create_trial(
                params=trial.params,
                distributions=trial.distributions,
                values=list(scored[trial.number]),
                user_attrs=trial.user_attrs,
            )
        )
    front = {
        n
        for n, (acc, width) in scored.items()
        if not any(
            a >= acc and sign * w <= sign * width and (a, w) != (acc, width)
            for a, w in scored.values()
        )
    }
    assert len(front) >= 2
    overrides = [
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=digits_pareto",
        "optimized_metric=[val/acc_best,width]",
    ]
    report = study_report(report_config(sweep, tmp_path, *overrides))
    assert report["pareto_front"] and report["objectives"] == ["val/acc_best", "width"]
    assert {b["number"] for b in report["best"]} == front
    out = Path(report["report_dir"])
    for best in report["best"]:
        assert best["values"] == list(scored[best["number"]])
        assert (out / "experiment" / f"digits_pareto_trial{best['number']}.yaml").is_file()
    assert len((out / "overrides.txt").read_text().splitlines()) == 2 * len(front)
    assert "pareto_front.html" in report["plots"]
    names = ("optimization_history", "param_importances", "slice", "parallel_coordinate", "contour")
    for name in names:
        for objective in ("val_acc_best", "width"):
            assert (out / f"{name}_{objective}.html").stat().st_size > 5000

    # no single best to train: pick one
    with pytest.raises(UserInputError, match=r"Pareto front .* trial=<number>"):
        study_report(report_config(sweep, tmp_path, *overrides, "train_best=true"))
    some = min(front)
    one = study_report(report_config(sweep, tmp_path, *overrides, f"trial={some}"))
    assert one["chosen"]["number"] == some
    assert {b["number"] for b in one["best"]} == front  # still the whole front


def test_a_chosen_trial_leaves_the_best_trials_files_alone(
    sweep: dict, tmp_path: Path, capsys
) -> None:
    """trial=N (make train-best TRIAL=N) wrote trial N over overrides.txt, the Best section
    and report.json's best, labelled "N best": the best stays the best, N is "chosen"."""
    study = optuna.load_study(study_name=SEARCH, storage=sweep["storage"])
    best = study.best_trial.number
    other = next(t.number for t in study.trials if t.number != best)
    study_report(report_config(sweep, tmp_path))
    out = tmp_path / "optuna" / SEARCH
    before = (out / "overrides.txt").read_text()
    report = study_report(report_config(sweep, tmp_path, f"trial={other}"))
    assert [b["number"] for b in report["best"]] == [best]
    assert (out / "overrides.txt").read_text() == before
    assert report["chosen"]["number"] == other
    assert (out / f"trial{other}.txt").read_text().startswith(f"# trial {other}:")
    assert (out / "experiment" / f"{SEARCH}_trial{other}.yaml").is_file()
    assert json.loads((out / "report.json").read_text())["best"][0]["number"] == best
    page = (out / "index.html").read_text()
    assert f"<td>{best} <b>best</b></td>" in page and f"<td>{other} <b>chosen</b></td>" in page
    assert f"<h2>Chosen: trial {other}</h2>" in page
    assert f"Chosen trial {other} (trial={other})" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["hydra.sweeper.study_name=nope"], r"No study named nope .* digits_optuna \(4 trials\)"),
        (["hydra.sweeper.storage=sqlite:///{tmp}/none.db"], r"No study database at .*none\.db"),
        (["hydra.sweeper.storage=null"], r"keeps its study in memory"),
        (["trial=99"], r"trial=99: no such trial .* Complete trials: \[0, 1, 2, 3\]"),
    ],
)
def test_studies_that_are_not_there(sweep: dict, tmp_path: Path, overrides, message) -> None:
    overrides = [o.replace("{tmp}", str(tmp_path)) for o in overrides]
    with pytest.raises(UserInputError, match=message):
        study_report(report_config(sweep, tmp_path, *overrides))
    assert not (tmp_path / "none.db").exists()  # nothing created on the way


def test_no_search_named_and_no_complete_trial(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match=r"hparams_search=<name> .* digits_optuna"):
        study_report(compose_config("study_report.yaml", [], tmp_path))
    storage = f"sqlite:///{tmp_path}/failed.db"
    study = optuna.create_study(study_name=SEARCH, storage=storage)
    study.tell(study.ask(), state=TrialState.FAIL)
    cfg = compose_config(
        "study_report.yaml",
        [f"hparams_search={SEARCH}", f"hydra.sweeper.storage={storage}"],
        tmp_path,
    )
    with pytest.raises(UserInputError, match=r"no complete trial \(1 fail\)"):
        study_report(cfg)


def test_unknown_study_on_the_command_line(sweep: dict) -> None:
    done = run_cli(
        "reports/study_report.py",
        "hparams_search=mnist_optuna",
        f"hydra.sweeper.storage={sweep['storage']}",
        f"paths.log_dir={sweep['logs']}",
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"Error: No study named mnist_optuna in {sweep['storage']}. The studies there: "
        "digits_optuna (4 trials). Report one with hparams_search=<its search config>, or "
        "hydra.sweeper.study_name=<name>."
    ]


def test_experiment_yaml_composes_like_its_overrides(tmp_path: Path) -> None:
    """Groups early and late in train.yaml's defaults, additions, deletions, lists."""
    overrides = [
        "experiment=digits_cnn",
        "model/optimizer=sgd",
        "~logger",
        "debug=limit",
        "trainer.max_epochs=3",
        "+trainer.gradient_clip_val=0.5",
        "tags=[a,'b c']",
        "model.optimizer.lr=0.0125",
    ]
    line = compose_train(overrides)
    groups = set(line.hydra.runtime.choices)
    (tmp_path / "experiment").mkdir()
    text = experiment_yaml(overrides, groups, ["a test"])
    (tmp_path / "experiment" / "mine.yaml").write_text(text)
    assert "pass it too: ~logger" in text  # as the YAML says: ~logger goes on the line
    composed = compose_train(
        ["experiment=mine", "~logger", f"hydra.searchpath=[file://{tmp_path}]"]
    )
    assert job_part(composed) == job_part(line)
    assert composed.trainer.gradient_clip_val == 0.5 and composed.get("logger") is None


def test_a_trial_of_a_search_whose_base_experiment_brings_its_groups(tmp_path: Path) -> None:
    """diabetes_optuna searches model/criterion, a group only its base experiment
    (diabetes_mlp) has: the trial's line composes with the experiment first."""
    storage = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(study_name="diabetes_optuna", storage=storage)
    params = {"model/criterion": "huber", "model.optimizer.lr": 0.002}
    study.add_trial(
        create_trial(
            params=params,
            distributions={
                "model/criterion": CategoricalDistribution(["mse", "huber", "l1"]),
                "model.optimizer.lr": FloatDistribution(0.0003, 0.03, log=True),
            },
            value=0.4,
            # what the sweeper records: the job's overrides, the sweep's command line last
            user_attrs={
                "overrides": [
                    "model/criterion=huber",
                    "model.optimizer.lr=0.002",
                    "hparams_search=diabetes_optuna",
                    "trainer.max_epochs=3",
                ],
                "run_dir": str(tmp_path / "run"),
            },
        )
    )
    overrides, line = trial_overrides(study.trials[0], "diabetes_optuna")
    assert overrides[0] == "experiment=diabetes_mlp"
    assert "hparams_search=diabetes_optuna" not in overrides
    assert line.hydra.runtime.choices["model/criterion"] == "huber"
    assert line.model.optimizer.lr == 0.002 and line.trainer.max_epochs == 3


@pytest.mark.parametrize(
    "value",
    [
        0.1,
        1e-05,
        3,
        -2,
        True,
        None,
        "adamw",
        "true",
        "1",
        "a b",
        "it's",
        "${paths.log_dir}",
        [1, "x"],
        {"a": 1},
        float("inf"),
    ],
)
def test_override_values_read_back(value) -> None:
    (override,) = OverridesParser.create().parse_overrides([f"key={override_value(value)}"])
    assert override.value() == value


@pytest.mark.slow
def test_train_best_reproduces_the_best_trial(sweep: dict, tmp_path: Path) -> None:
    """train_best=true (make train-best) trains the best trial again: same value, seed and all."""
    done = run_cli(
        "reports/study_report.py",
        f"hparams_search={SEARCH}",
        f"hydra.sweeper.storage={sweep['storage']}",
        f"report_dir={tmp_path}",
        f"paths.log_dir={tmp_path}",
        "train_best=true",
        f"train_args='paths.log_dir={tmp_path}/best'",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    run_dir = Path(re.search(r"^Run directory: (.*)$", done.stdout, re.MULTILINE).group(1))
    assert run_dir.is_relative_to(tmp_path / "best")
    status = json.loads((run_dir / "run_status.json").read_text())
    assert status["metrics"]["val/acc_best"] == report["best"][0]["values"][0]


@pytest.mark.parametrize(
    ("args", "limit"),
    [
        (["+trainer.limit_train_batches=2"], 2),  # as src/train.py needs it: Hydra refused it
        (["trainer.limit_train_batches=2"], 2),  # without its +: a key train.yaml lacks
        (["++trainer.limit_train_batches=2"], 2),
        (["~trainer.limit_train_batches"], None),  # the trial's own addition, left out
    ],
)
def test_train_args_replace_what_the_trial_set(args: list[str], limit) -> None:
    """make train-best ARGS="..." on a trial whose sweep had +trainer.limit_train_batches=3:
    the key's value is the one given, and the rest of the trial's line stays."""
    trial = ["experiment=digits_mlp", "data.batch_size=16", "+trainer.limit_train_batches=3"]
    merged = with_train_args(trial, [*args, "data.batch_size=32", "model/optimizer=sgd"])
    assert merged[0] == "experiment=digits_mlp" and merged.count("data.batch_size=32") == 1
    assert "data.batch_size=16" not in merged and "+trainer.limit_train_batches=3" not in merged
    cfg = compose_train(merged)
    assert cfg.trainer.get("limit_train_batches") == limit
    assert cfg.data.batch_size == 32
    assert cfg.hydra.runtime.choices["model/optimizer"] == "sgd"


def test_index_says_how_many_epochs_a_pruned_trial_trained(tmp_path: Path) -> None:
    """pruned_at_epoch is 0-based: "pruned after epoch 0" read as if it never trained."""
    from src.reports.study_plots import write_index

    run = {"state": "PRUNED", "values": [0.5], "run_dir": None, "mlflow_run_id": None}
    report = {
        "best": [], "chosen": None, "plots": [], "trials": {"pruned": 1}, "study": "s",
        "storage": "sqlite:///x", "objectives": ["v"], "directions": ["maximize"],
        "importance": "x", "runs": {"0": run | {"pruned_at_epoch": 0, "fail_reason": None}},
    }  # fmt: skip
    write_index(tmp_path, report)
    assert "<td>pruned after 1 epoch</td>" in (tmp_path / "index.html").read_text()
