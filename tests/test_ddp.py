"""DDP under Hydra: the command Lightning runs for the extra ranks, and trainer=ddp_sim
end to end (2 CPU processes, gloo) in a single run and in an Optuna multirun: one
directory per job, written by rank 0 alone, each job's metric returned to the sweeper."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from hydra.conf import ConfigSourceInfo
from hydra.core.hydra_config import HydraConfig
from omegaconf import read_write

from src.utils.ddp import multirun_job_as_single_run
from src.utils.errors import UserInputError
from tests.conftest import ROOT, compose_config, run_cli
from tests.test_cli import FAST, run_directory, test_metrics

# what Lightning prints when a rank joins the process group
RANK_ONE_JOINS = "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2"


@pytest.fixture
def multirun_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Hydra's state inside job 1 of `python src/train.py -m -cd <dir> trainer=ddp_sim
    model.optimizer.lr=0.01,0.02 hydra.sweep.dir=sweeps/s`; returns the job's directory."""
    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)  # put back after the test
    overrides = ["hydra.mode=MULTIRUN", "hydra.sweep.dir=sweeps/s"]
    cfg = compose_config(
        "train.yaml", [*overrides, "trainer=ddp_sim", "model.optimizer.lr=0.02"], tmp_path
    )
    job_dir = tmp_path / "sweeps" / "s" / "1"
    with read_write(cfg.hydra):  # what Hydra adds for -cd and at the job's start
        cfg.hydra.runtime.config_sources.append(
            ConfigSourceInfo(
                path=str(tmp_path / "more_configs"), schema="file", provider="command-line"
            )
        )
        cfg.hydra.runtime.output_dir = str(job_dir)
    HydraConfig.instance().set_config(cfg)
    monkeypatch.setattr(sys, "argv", ["src/train.py", "-m", "model.optimizer.lr=0.01,0.02"])
    return job_dir


def test_rank_one_reruns_its_job_alone(multirun_job: Path) -> None:
    """Lightning's own command for rank 1, built inside a multirun job: the script with
    this job's overrides as a single run (no -m, no sweep), in the job's directory."""
    from lightning.fabric.strategies.launchers.subprocess_script import _hydra_subprocess_cmd

    import __main__

    script = str(ROOT / "src" / "train.py")
    sweep_argv, main_spec = sys.argv, __main__.__spec__
    with multirun_job_as_single_run(script):
        command, _ = _hydra_subprocess_cmd(local_rank=1)
    # the next job starts from the sweep's command and the process's own __main__ again
    assert sys.argv is sweep_argv and __main__.__spec__ is main_spec
    assert command == [
        sys.executable,
        script,  # not pytest, the __main__ of this process
        "--config-name=train.yaml",
        f"--config-path={ROOT / 'configs'}",
        f"--config-dir={multirun_job.parents[2] / 'more_configs'}",
        "hydra.sweep.dir=sweeps/s",
        "trainer=ddp_sim",
        "model.optimizer.lr=0.02",
        "hydra.mode=RUN",  # an hparams_search config's MULTIRUN does not start a sweep
        f'hydra.run.dir="{multirun_job}"',  # Lightning adds these three
        "hydra.job.name=train_ddp_process_1",
        "hydra.output_subdir=null",
    ]


def test_multirun_under_torchrun_is_refused(multirun_job: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "1")  # what torchrun sets in its processes
    with pytest.raises(UserInputError, match="without torchrun"):
        with multirun_job_as_single_run(str(ROOT / "src" / "train.py")):
            pass


def assert_written_by_rank_zero(run_dir: Path) -> None:
    """One run's files, written once: rank 1 would add a logger version, or rewrite
    the run metadata with its own command (which names its Hydra job)."""
    saved = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert len(saved) == 2 and saved[0].startswith("epoch_") and saved[1] == "last.ckpt"
    assert [p.name for p in (run_dir / "csv").iterdir()] == ["version_0"]
    metadata = json.loads((run_dir / "run_metadata.json").read_text())
    assert metadata["devices"]["num_devices"] == 2
    assert metadata["devices"]["strategy"] == "JobScopedDDPStrategy"
    assert not any("train_ddp_process" in arg for arg in metadata["command"])
    assert json.loads((run_dir / "run_status.json").read_text())["status"] == "finished"


@pytest.mark.slow
def test_ddp_sim_single_run(tmp_path: Path) -> None:
    done = run_cli("train.py", "trainer=ddp_sim", f"paths.log_dir={tmp_path}", *FAST, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (done.stdout + done.stderr).count(RANK_ONE_JOINS) == 1
    assert [p.name for p in (tmp_path / "train").iterdir()] == ["runs"]
    runs = list((tmp_path / "train" / "runs").iterdir())
    assert len(runs) == 1 and run_directory(done.stdout) == runs[0]
    assert_written_by_rank_zero(runs[0])
    assert test_metrics(done.stdout)["test/acc"] > 0.8


@pytest.mark.slow
def test_ddp_sim_optuna_multirun(tmp_path: Path) -> None:
    """Two Optuna trials, each a 2-process DDP job; Optuna's best value is the
    best job's val/acc_best, so each job returned rank 0's metric."""
    done = run_cli(
        "train.py",
        "-m",
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.direction=maximize",
        "hydra.sweeper.sampler.seed=1",
        "trainer=ddp_sim",
        "model.optimizer.lr=interval(0.003,0.03)",
        f"paths.log_dir={tmp_path}",
        *FAST,
        timeout=500,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, done.stderr[-3000:]
    assert output.count("Launching 2 jobs") == 1  # rank 1 never starts a sweep of its own
    assert output.count(RANK_ONE_JOINS) == 2  # each job starts its own rank 1
    # no run directory of rank 1, no second multirun directory
    assert [p.name for p in (tmp_path / "train").iterdir()] == ["multiruns"]
    (sweep,) = (tmp_path / "train" / "multiruns").iterdir()
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [job.name for job in jobs] == ["0", "1"]

    returned = {}
    for job in jobs:
        assert_written_by_rank_zero(job)
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        (lr,) = [o.split("=")[1] for o in overrides if o.startswith("model.optimizer.lr=")]
        metadata = json.loads((job / "run_metadata.json").read_text())
        assert "-m" not in metadata["command"]  # the job's own command, as a single run
        assert f"model.optimizer.lr={lr}" in metadata["command"]
        metrics = json.loads((job / "run_status.json").read_text())["metrics"]
        assert metrics["val/acc_best"] > 0.8
        returned[float(lr)] = metrics["val/acc_best"]
    assert len(returned) == 2  # two trials, two learning rates

    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    best_lr = max(returned, key=returned.get)
    assert results["best_value"] == pytest.approx(returned[best_lr])
    assert results["best_params"]["model.optimizer.lr"] == pytest.approx(best_lr)


@pytest.mark.slow
def test_ddp_sim_parallel_jobs_through_joblib(tmp_path: Path) -> None:
    """`-m hydra/launcher=joblib hydra.launcher.n_jobs=2 trainer=ddp_sim lr=a,b`: two
    jobs at once, each in a joblib worker that starts its own rank 1 from the script."""
    done = run_cli(
        "train.py",
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "trainer=ddp_sim",
        "model.optimizer.lr=0.01,0.02",
        f"paths.log_dir={tmp_path}",
        *FAST,
        timeout=500,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (done.stdout + done.stderr).count(RANK_ONE_JOINS) == 2
    assert [p.name for p in (tmp_path / "train").iterdir()] == ["multiruns"]
    (sweep,) = (tmp_path / "train" / "multiruns").iterdir()
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [job.name for job in jobs] == ["0", "1"]
    for job, lr in zip(jobs, ("0.01", "0.02"), strict=True):
        assert_written_by_rank_zero(job)
        command = json.loads((job / "run_metadata.json").read_text())["command"]
        assert f"model.optimizer.lr={lr}" in command and "-m" not in command
        metrics = json.loads((job / "run_status.json").read_text())["metrics"]
        assert metrics["val/acc_best"] > 0.8


def processes_naming(text: str) -> list[str]:
    """Command lines of the processes still alive that name ``text`` (a test's log dir):
    a rank left behind by a finished run would be one of them."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if proc.name.isdigit() and text in cmdline:
            found.append(cmdline)
    return found


# {-m multirun, hparams_search} x {basic, parallel launcher}, each job 2 DDP ranks
SWEEPS = {
    "multirun-basic": ["-m", "model.optimizer.lr=0.01,0.02"],
    "multirun-parallel": ["-m", "model.optimizer.lr=0.01,0.02", "hydra/launcher=parallel"],
    "search-basic": ["hparams_search=digits_optuna", "hydra.sweeper.n_trials=2"],
    "search-parallel": [
        "hparams_search=digits_optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
        "hydra/launcher=parallel",
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("sweep", SWEEPS)
def test_ddp_sim_in_every_kind_of_sweep(sweep: str, tmp_path: Path, reaped_descendants) -> None:
    """Each job's rank 1 joins its job (one directory per job, written by rank 0), never
    starts a sweep of its own (exactly n_trials trials in the study), and no rank
    process is left once the sweep is over."""
    done = run_cli(
        "train.py",
        *SWEEPS[sweep],
        "trainer=ddp_sim",
        f"paths.log_dir={tmp_path}",
        *FAST,
        timeout=580,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, done.stderr[-3000:]
    assert output.count(RANK_ONE_JOINS) == 2
    # one sweep, not one per rank: a single multirun directory (launchers word it differently)
    assert [p.name for p in (tmp_path / "train").iterdir()] == ["multiruns"]
    (sweep_dir,) = (tmp_path / "train" / "multiruns").iterdir()
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())
    assert [job.name for job in jobs] == ["0", "1"]
    for job in jobs:
        assert_written_by_rank_zero(job)
        metrics = json.loads((job / "run_status.json").read_text())["metrics"]
        assert metrics["val/acc_best"] > 0.8  # each job's model learned the digits
    if sweep.startswith("search"):
        import optuna

        study = optuna.load_study(
            study_name="digits_optuna", storage=f"sqlite:///{tmp_path}/optuna/optuna.db"
        )
        assert len(study.trials) == 2  # no twin trials of rank 1
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
        assert all(t.params for t in study.trials)
    assert processes_naming(str(tmp_path)) == []
    assert reaped_descendants() == []  # no rank or launcher worker left, orphaned or not


@pytest.fixture
def reaped_descendants():
    """Make this process the reaper of orphans (Linux's child subreaper), so that a rank
    process whose parent died is still found among its descendants; yields a function
    listing them. Whatever is left at the end is killed, so no test leaves one behind."""
    import ctypes

    import psutil

    pr_set_child_subreaper = 36
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0)
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}

    def new_descendants(grace_s: float = 10.0) -> list[str]:
        """The command lines of new descendants still running ``grace_s`` after the call.
        The grace is for a worker caught mid-exit (seen in CI: its command line already
        empty, not yet a zombie); a process left behind is still there when it ends."""
        new = [p for p in me.children(recursive=True) if p.pid not in before]
        _, alive = psutil.wait_procs(new, timeout=grace_s)
        found = []
        for proc in alive:
            try:
                if proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(f"pid {proc.pid}: {' '.join(proc.cmdline())}")
            except psutil.NoSuchProcess:
                continue
        return found

    yield new_descendants
    for proc in me.children(recursive=True):
        if proc.pid not in before:
            proc.kill()
    psutil.wait_procs([p for p in me.children() if p.pid not in before], timeout=10)
    libc.prctl(pr_set_child_subreaper, 0, 0, 0, 0)


FAULT = "+callbacks.rank_fault._target_=tests.rank_fault_callback.RaiseOnRank"


@pytest.mark.slow
def test_a_failing_rank_fails_its_job_only(tmp_path: Path, reaped_descendants) -> None:
    """Job 0 of a 2-job ddp_sim multirun raises on rank 1 only: its job fails (traceback
    in its train.log, named in the end-of-multirun summary), job 1 still runs and learns,
    and no rank process is left behind."""
    from tests.rank_fault_callback import MESSAGE

    done = run_cli(
        "train.py",
        "-m",
        "trainer=ddp_sim",
        FAULT,
        "+callbacks.rank_fault.rank=1,-1",  # job 0: rank 1 raises; job 1: no fault
        f"paths.log_dir={tmp_path}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        *FAST,
        timeout=500,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0  # the sweep reports the failed job
    assert done.returncode != -9 and "Killed" not in output, output[-3000:]
    failed, finished = (tmp_path / "sweep" / "0"), (tmp_path / "sweep" / "1")
    assert f"{MESSAGE} 1" in (failed / "train.log").read_text()
    assert json.loads((failed / "run_status.json").read_text())["status"] == "failed"
    status = json.loads((finished / "run_status.json").read_text())
    assert status["status"] == "finished" and status["metrics"]["val/acc_best"] > 0.8
    summary = (tmp_path / "sweep" / "multirun_summary.md").read_text()
    (row,) = [line for line in summary.splitlines() if "rank=1" in line]
    assert "FAILED" in row and "rank 1" in row, summary
    assert reaped_descendants() == []
