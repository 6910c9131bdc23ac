"""Where studies live and who watches them: PostgreSQL and journal files shared by two
sweeps at once, studies of the old Optuna 2.10 stack, storages that cannot be reached,
optuna-dashboard on loopback (REST API and a headless browser), and bad input that
must stop a sweep before its first trial."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from hydra_plugins.optuna_study_sweeper._space import SweepError
from hydra_plugins.optuna_study_sweeper._storage import (
    open_storage,
    prepare_storage,
    printable_url,
)
from tests.conftest import ROOT, run_cli

OLD_DB = ROOT / "tests" / "data" / "optuna_2_10_study.db"  # 3 trials, made with optuna 2.10.1
POSTGRES = os.environ.get(
    "OPTUNA_TEST_POSTGRES", "postgresql://optuna:optuna@127.0.0.1:55432/optuna"
)
FAST = ["debug=fdr", "extras.print_config=false"]


def sweep_process(log_dir: Path, storage: str, study: str, seed: int, n: int) -> subprocess.Popen:
    command = [
        sys.executable, str(ROOT / "src" / "train.py"), "hparams_search=digits_optuna",
        f"hydra.sweeper.storage={storage}", f"hydra.sweeper.study_name={study}",
        f"hydra.sweeper.seed={seed}", f"hydra.sweeper.n_trials={n}",
        f"paths.log_dir={log_dir}", *FAST,
    ]  # fmt: skip
    return subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def two_sweeps_at_once(tmp_path: Path, storage: str, study: str) -> optuna.Study:
    """Two sweeper processes add 3 and 4 trials to one study at the same time."""
    runs = [sweep_process(tmp_path / f"p{i}", storage, study, seed=i, n=3 + i) for i in (0, 1)]
    outputs = [run.communicate(timeout=900) for run in runs]
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, out[-2000:] + err[-2000:]
        # the sweep says where its study is, a database server's password masked
        assert f"Study {study} in {printable_url(prepare_storage(storage))}: " in out + err
        assert ":optuna@" not in out + err
        assert "env_set" not in out + err  # the launch lines show the trial's overrides only
    loaded = optuna.load_study(study_name=study, storage=open_storage(prepare_storage(storage)))
    numbers = [t.number for t in loaded.trials]
    assert sorted(numbers) == list(range(7))  # the exact sum, no duplicate, none lost
    assert all(t.state == TrialState.COMPLETE for t in loaded.trials)
    # the two sweeps ran side by side: their spans (first start, last end) overlap
    spans = {}
    for t in loaded.trials:
        who = Path(t.user_attrs["run_dir"]).relative_to(tmp_path).parts[0]
        first, last = spans.get(who, (t.datetime_start, t.datetime_complete))
        spans[who] = (min(first, t.datetime_start), max(last, t.datetime_complete))
    (a_first, a_last), (b_first, b_last) = spans.values()
    assert max(a_first, b_first) < min(a_last, b_last)
    return loaded


def postgres_or_skip() -> str:
    url = prepare_storage(POSTGRES)
    try:
        open_storage(url)
    except SweepError as error:
        pytest.skip(f"no PostgreSQL server ({error}); make postgres starts one")
    return url


@pytest.mark.slow
def test_two_sweeps_share_a_postgresql_study(tmp_path: Path) -> None:
    postgres_or_skip()
    two_sweeps_at_once(tmp_path, POSTGRES, f"shared_{uuid.uuid4().hex[:8]}")


@pytest.mark.slow
def test_two_sweeps_share_a_journal_file(tmp_path: Path) -> None:
    journal = tmp_path / "shared" / "journal.log"
    two_sweeps_at_once(tmp_path, f"journal://{journal}", "shared")
    assert journal.stat().st_size > 0


def _open_after(url: str, barrier: Any, results: Any) -> None:
    barrier.wait()  # every process at once
    try:
        open_storage(url)
        results.put("ok")
    except Exception as error:
        results.put(f"{type(error).__name__}: {error}")


def test_processes_opening_a_new_database_at_once_all_open_it(tmp_path: Path) -> None:
    """Four processes start on a SQLite file that does not exist yet (parallel sweeps, or
    the test that watches a sweep): each creates the tables, and all but one failed with
    "table studies already exists" or "UNIQUE constraint failed: alembic_version" (8 of
    10 rounds)."""
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    for round_ in range(3):
        url = f"sqlite:///{tmp_path}/{round_}/optuna.db"
        (tmp_path / str(round_)).mkdir()
        barrier, results = fork.Barrier(4), fork.Queue()
        processes = [
            fork.Process(target=_open_after, args=(url, barrier, results)) for _ in range(4)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=120)
        assert [results.get(timeout=5) for _ in processes] == ["ok"] * 4


def test_storage_urls_print_with_no_password_and_single_slashes() -> None:
    """paths.log_dir ends in a slash (as in LHT): sqlite:////x/logs//optuna was printed;
    the sweep printed a PostgreSQL server's password in its "Study ... in" line."""
    assert (
        printable_url("sqlite:////x/logs//optuna/optuna.db") == "sqlite:////x/logs/optuna/optuna.db"
    )
    assert printable_url("sqlite:///logs/optuna.db") == "sqlite:///logs/optuna.db"
    assert printable_url("postgresql://me:secret@db:5432/s") == "postgresql://me:***@db:5432/s"
    assert printable_url("journal:///x/j.log") == "journal:///x/j.log"


def test_storage_urls_are_checked_before_use(tmp_path: Path) -> None:
    assert prepare_storage("postgresql://u:p@h:5432/db") == "postgresql+psycopg://u:p@h:5432/db"
    assert prepare_storage(f"journal://{tmp_path}/j/x.log") == f"journal://{tmp_path}/j/x.log"
    assert (tmp_path / "j").is_dir()
    with pytest.raises(
        SweepError, match=r"Cannot reach the study storage postgresql\+psycopg://.*:1/"
    ):
        open_storage(prepare_storage("postgresql://optuna:optuna@127.0.0.1:1/optuna"))
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(
        SweepError, match=r"Cannot open the study database .*junk\.db: .*not a database"
    ):
        open_storage(f"sqlite:///{junk}")
    assert junk.read_bytes() == b"not a database" * 100
    with pytest.raises(SweepError, match="not a database URL"):
        prepare_storage("no such storage")


def test_a_study_of_the_old_stack_names_the_upgrade(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    shutil.copy(OLD_DB, old)
    with pytest.raises(
        SweepError,
        match=r"older Optuna \(table schema set up by optuna 2\.10\.1\).*optuna storage upgrade --storage sqlite:///",
    ):
        open_storage(f"sqlite:///{old}")
    assert old.read_bytes() == OLD_DB.read_bytes()  # nothing changed on the way


@pytest.mark.slow
def test_an_upgraded_old_study_continues(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    shutil.copy(OLD_DB, old)
    storage = f"sqlite:///{old}"
    refused = run_cli(
        "train.py",
        "hparams_search=digits_optuna",
        f"hydra.sweeper.storage={storage}",
        f"paths.log_dir={tmp_path}",
        *FAST,
    )
    assert refused.returncode == 1 and "optuna storage upgrade" in refused.stderr
    assert not (tmp_path / "debug").exists()  # no trial was launched
    upgrade = subprocess.run(
        ["optuna", "storage", "upgrade", "--storage", storage],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    assert upgrade.returncode == 0, upgrade.stderr
    before = [
        (t.params, t.value)
        for t in optuna.load_study(study_name="digits_optuna", storage=storage).trials
    ]
    sweep = ["hparams_search=digits_optuna", f"hydra.sweeper.storage={storage}",
             "hydra.sweeper.n_trials=1", f"paths.log_dir={tmp_path}", *FAST]  # fmt: skip
    # today's digits_optuna searches batch sizes the old study did not: one message
    changed = run_cli("train.py", *sweep)
    assert changed.returncode == 1
    assert "already searched data.batch_size over other values" in changed.stderr
    # the old study's own space continues it
    old_space = ["hydra.sweeper.params=null", "model.optimizer.lr=tag(log,interval(0.0003,0.03))",
                 "data.batch_size=choice(16,32)"]  # fmt: skip
    done = run_cli("train.py", *sweep, *old_space)
    assert done.returncode == 0, done.stderr[-3000:]
    study = optuna.load_study(study_name="digits_optuna", storage=storage)
    assert [(t.params, t.value) for t in study.trials[:3]] == before
    assert [t.state for t in study.trials[3:]] == [TrialState.FAIL, TrialState.COMPLETE]


def test_bad_input_stops_the_sweep_before_any_trial(tmp_path: Path) -> None:
    unreachable = "postgresql://optuna:optuna@127.0.0.1:1/optuna"
    cases = {
        f"hydra.sweeper.storage={unreachable}": "Cannot reach the study storage postgresql+psycopg://optuna:***@127.0.0.1:1/optuna",
        "hydra/sweeper/pruner=nope": "Could not find 'hydra/sweeper/pruner/nope'",
        "hydra/sweeper/sampler=nope": "Could not find 'hydra/sweeper/sampler/nope'",
        "hydra/sweeper/sampler=motpe": "Optuna 4 removed MOTPESampler",
        "+hydra.sweeper.pruner.patience=2": "MedianPruner takes no ['patience']",
    }
    for override, message in cases.items():
        extra = ["hydra/sweeper/pruner=median"] if "patience" in override else []
        done = run_cli(
            "train.py",
            "hparams_search=digits_optuna",
            *extra,
            override,
            f"paths.log_dir={tmp_path}",
            *FAST,
        )
        assert done.returncode == 1 and message in done.stderr, (override, done.stderr[-2000:])
        assert not (tmp_path / "debug").exists(), override  # no trial was launched


def test_a_metric_never_logged_fails_the_first_trial_and_stops(tmp_path: Path) -> None:
    done = run_cli(
        "train.py",
        "hparams_search=digits_optuna",
        "optimized_metric=val/nope",
        "hydra.sweeper.n_trials=3",
        f"paths.log_dir={tmp_path}",
        *FAST,
    )
    assert done.returncode == 1
    assert "Trial 0 failed, and so would every trial: optimized_metric=val/nope" in done.stderr
    assert "Logged metrics: [" in done.stderr and "'val/acc'" in done.stderr
    study = optuna.load_study(
        study_name="digits_optuna", storage=f"sqlite:///{tmp_path}/optuna/optuna.db"
    )
    assert [t.state for t in study.trials] == [TrialState.FAIL]
    assert "val/nope" in study.trials[0].user_attrs["fail_reason"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_dashboard_serves_the_study_on_loopback(tmp_path: Path) -> None:
    """make optuna-dashboard: its REST API lists the study and its trials, and its page
    renders in headless chromium with every host but 127.0.0.1 unreachable."""
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: make chromium installs it"
    storage = f"sqlite:///{tmp_path}/optuna/optuna.db"
    (tmp_path / "optuna").mkdir()
    study = optuna.create_study(study_name="digits_optuna", storage=storage, direction="maximize")
    study.optimize(
        lambda t: t.suggest_float("model.optimizer.lr", 1e-4, 1e-2, log=True) * 10, n_trials=5
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "src" / "tools" / "dashboard.py"), "hparams_search=digits_optuna",
         f"paths.log_dir={tmp_path}", f"port={port}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                studies = json_of(f"{base}/api/studies")
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the dashboard did not answer within 120 s")
        (summary,) = studies["study_summaries"]
        assert summary["study_name"] == "digits_optuna"
        detail = json_of(f"{base}/api/studies/{summary['study_id']}?after=0")
        assert [t["number"] for t in detail["trials"]] == [0, 1, 2, 3, 4]
        assert {t["state"] for t in detail["trials"]} == {"Complete"}
        page = f"{base}/dashboard/studies/{summary['study_id']}"
        offline = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                   "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                   "--virtual-time-budget=15000"]  # fmt: skip
        dom = subprocess.run(
            [chromium, *offline, "--dump-dom", page], capture_output=True, text=True, timeout=120
        ).stdout
        assert "digits_optuna" in dom and "History" in dom  # rendered by its JavaScript
        shot = tmp_path / "dashboard.png"
        subprocess.run(
            [chromium, *offline, "--window-size=1280,900", f"--screenshot={shot}", page],
            capture_output=True,
            timeout=120,
        )
        import matplotlib.image

        pixels = matplotlib.image.imread(shot)
        assert pixels.shape[:2] == (900, 1280) and pixels.std() > 0.05  # not a blank page
        print(f"dashboard screenshot: {shot}")
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def json_of(url: str) -> dict:
    import json

    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())
