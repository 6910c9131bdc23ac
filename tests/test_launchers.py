"""Launchers: trials side by side on this machine (joblib), and the SLURM configs of Hydra's
submitit launcher, composed and turned into the sbatch script submitit would submit (there
is no cluster here to submit it to)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from hydra_plugins.parallel_launcher.parallel_launcher import LinePrefixed
from tests.conftest import ROOT, compose_config

TINY_APP = """
import logging, sys
import hydra

log = logging.getLogger("tiny")


@hydra.main(version_base=None, config_path=None)
def main(cfg):
    log.info(f"logged {cfg.x}")
    print(f"printed {cfg.x}", "in", "pieces")
    print(f"warned {cfg.x}", file=sys.stderr)


main()
"""


def sbatch_script(launcher, folder: Path) -> str:
    """The sbatch file submitit writes for one job of ``launcher`` (a SlurmLauncher)."""
    from submitit.slurm.slurm import (
        SlurmExecutor,
        _convert_mem,
        _get_default_parameters,
        _make_sbatch_string,
    )

    # what the launcher hands the executor: its generic names mapped to sbatch's
    generic = SlurmExecutor._equivalence_dict()
    params = {
        generic.get(key, key): value
        for key, value in launcher.params.items()
        if key not in ("submitit_folder", "max_num_timeout")  # the executor's own settings
    }
    params["mem"] = _convert_mem(params["mem"])
    unknown = set(params) - set(_get_default_parameters())
    assert not unknown, f"submitit's SLURM executor does not take {unknown}"
    return _make_sbatch_string(command="python -m submitit.core._submit", folder=folder, **params)


@pytest.mark.parametrize(
    ("launcher", "partition", "gpus", "cpus", "mem", "minutes"),
    [("slurm_cpu", "cpu", None, 4, "16GB", 60), ("slurm_gpu", "gpu", 1, 8, "64GB", 240)],
)
def test_slurm_configs(launcher, partition, gpus, cpus, mem, minutes, tmp_path: Path) -> None:
    cfg = compose_config(
        "train.yaml",
        [f"hydra/launcher={launcher}", "hparams_search=digits_optuna", "hydra.sweeper.n_jobs=8"],
        tmp_path,
    )
    built = instantiate(cfg.hydra.launcher)
    assert type(built).__name__ == "SlurmLauncher"
    assert built.params["partition"] == partition
    assert built.params["gpus_per_node"] == gpus
    assert built.params["submitit_folder"].startswith(str(tmp_path))  # beside the trials
    script = sbatch_script(built, tmp_path)
    assert f"#SBATCH --partition={partition}\n" in script
    assert f"#SBATCH --cpus-per-task={cpus}\n" in script
    assert f"#SBATCH --mem={mem}\n" in script
    assert f"#SBATCH --time={minutes}\n" in script
    assert ("#SBATCH --gpus-per-node=1\n" in script) == (gpus == 1)
    assert built.params["array_parallelism"] == 16  # jobs of one batch at once
    # every key of these configs is documented where it is set
    for name in ("slurm_cpu", "slurm_gpu"):
        text = (ROOT / "configs" / "hydra" / "launcher" / f"{name}.yaml").read_text()
        for line in text.splitlines():
            if re.match(r"^\w+:", line) and not line.startswith("defaults:"):
                assert " # " in line, f"{name}.yaml: {line} has no comment"


def test_slurm_launcher_without_slurm_is_one_message(tmp_path: Path) -> None:
    """No srun on the PATH: one message before any trial exists (it was submitit's
    traceback at the first batch, and two trials recorded FAIL as "interrupted")."""
    storage = tmp_path / "study.db"
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["PATH"] = str(tmp_path / "bin")  # an empty folder: no srun, as on a laptop
    done = subprocess.run(
        [sys.executable, str(ROOT / "src" / "train.py"), "hparams_search=digits_optuna",
         "hydra/launcher=slurm_cpu", "hydra.sweeper.n_trials=1", f"paths.log_dir={tmp_path}",
         f"hydra.sweeper.storage=sqlite:///{storage}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode != 0
    assert "this machine has no SLURM (no srun on its PATH)" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    if storage.exists():  # no trial was created
        summaries = optuna.get_all_study_summaries(f"sqlite:///{storage}")
        assert all(summary.n_trials == 0 for summary in summaries)


def test_parallel_launcher_follows_the_sweeper(tmp_path: Path) -> None:
    """hydra/launcher=parallel starts as many workers as the sweeper launches trials at once."""
    overrides = ["hydra/launcher=parallel", "hparams_search=digits_optuna"]
    cfg = compose_config("train.yaml", [*overrides, "hydra.sweeper.n_jobs=2"], tmp_path)
    built = instantiate(cfg.hydra.launcher)
    # Hydra's joblib launcher, listing and prefixing the jobs
    assert [c.__name__ for c in type(built).__mro__[:2]] == ["ParallelLauncher", "JoblibLauncher"]
    assert built.joblib["n_jobs"] == 2
    # Hydra's basic sweeper has no n_jobs: one worker per core, as the plugin's default
    basic = compose_config("train.yaml", ["hydra/launcher=parallel"], tmp_path)
    assert OmegaConf.to_container(basic.hydra.launcher, resolve=True)["n_jobs"] == -1


@pytest.mark.slow
def test_two_workers_share_the_study(tmp_path: Path) -> None:
    """A real 4-trial search, 2 trials at a time in 2 worker processes, one study."""
    storage = f"sqlite:///{tmp_path}/optuna.db"
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    sweeper = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "src" / "train.py"),
            "hparams_search=digits_optuna",
            "hydra/launcher=parallel",
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.n_trials=4",
            f"hydra.sweeper.storage={storage}",
            "debug=fdr",
            f"paths.log_dir={tmp_path}",
            "extras.print_config=false",
            # each job's log line starts with the id of the process that ran it
            "hydra.job_logging.formatters.simple.format='%(process)d %(message)s'",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = sweeper.communicate(timeout=900)
    assert sweeper.returncode == 0, err[-3000:]

    study = optuna.load_study(study_name="digits_optuna", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    (multirun,) = (tmp_path / "debug" / "multiruns").iterdir()
    jobs = sorted(p for p in multirun.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1", "2", "3"]
    workers = [int((job / "debug.log").read_text().split()[0]) for job in jobs]
    assert len(set(workers)) == 2 and sweeper.pid not in workers, workers
    # the trials' values reached the study: each job's metric is its trial's value
    for job, trial in zip(jobs, study.trials, strict=True):
        status = json.loads((job / "run_status.json").read_text())
        assert status["metrics"]["val/acc_best"] == trial.value


def test_line_prefixed_starts_every_line_with_the_job() -> None:
    import io

    out = io.StringIO()
    stream = LinePrefixed(out, "[job 3] ")
    for piece in ("one", " line\n", "two\n\nthree", "\n", ""):
        stream.write(piece)
    assert out.getvalue() == "[job 3] one line\n[job 3] two\n[job 3]\n[job 3] three\n"
    assert not stream.isatty()  # rich draws no live bar over the other workers' lines


def test_parallel_jobs_are_numbered_through_the_sweep_and_their_lines_named(
    tmp_path: Path,
) -> None:
    """Two workers, four jobs in batches of two: the listing numbers them 0-3 (the plugin
    numbered each batch from 0: #0 #1 #0 #1), and every line a job prints, logs or writes
    to stderr starts with its number, the one of its directory."""
    app = tmp_path / "tiny_app.py"
    app.write_text(TINY_APP)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["PYTHONPATH"] = str(ROOT)  # the template's hydra_plugins, as src/train.py sets it
    done = subprocess.run(
        [sys.executable, str(app), "-m", "+x=a,b,c,d", "hydra/launcher=parallel",
         "hydra.launcher.n_jobs=2", "hydra.sweeper.max_batch_size=2",
         f"hydra.searchpath=[file://{ROOT / 'configs'}]", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    listed = re.findall(r"#(\d+) : \+x=(\w)", done.stdout)
    assert listed == [("0", "a"), ("1", "b"), ("2", "c"), ("3", "d")], done.stdout
    for job, x in enumerate("abcd"):
        assert re.search(rf"^\[job {job}\] .*logged {x}$", done.stdout, re.M), done.stdout
        assert f"\n[job {job}] printed {x} in pieces\n" in done.stdout
        assert f"[job {job}] warned {x}\n" in done.stderr
        assert (tmp_path / "sweep" / str(job) / ".hydra" / "overrides.yaml").read_text() == (
            f"- +x={x}\n"
        )
    # nothing a job wrote is without its number (the sweep's own lines are Hydra's)
    for line in done.stdout.splitlines():
        assert line.startswith(("[job ", "[20")), line
