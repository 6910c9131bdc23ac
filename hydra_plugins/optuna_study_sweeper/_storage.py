"""Where a study lives: SQLite, PostgreSQL (any SQLAlchemy URL), or a journal file.

``hydra.sweeper.storage`` takes

- ``sqlite:///<path>``: one file, one machine (its folder is made);
- ``postgresql://user:password@host:5432/db``: a server, for several machines;
- ``journal:///<path>`` (or ``journal://<relative path>``): Optuna's
  ``JournalStorage`` with a file backend, an append-only log that processes on a
  shared file system write to under a file lock, when no database server is at hand.

The storage is opened (and checked) before any trial is launched: a server that
cannot be reached or a database written by an older Optuna stops the sweep with
one message naming the URL. On RDB storages, trials send a heartbeat; a trial
whose heartbeat stopped (its sweep was killed) is marked FAIL when a sweep starts.
"""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url

from ._space import SweepError

JOURNAL = "journal://"


def prepare_storage(storage: str | None) -> str | None:
    """The storage URL, with a SQLite or journal file's folder made."""
    if not storage:
        return None
    storage = str(storage)
    if storage.startswith(JOURNAL):
        path = Path(storage[len(JOURNAL) :])
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"{JOURNAL}{path}"
    try:
        url = make_url(storage)
    except Exception:
        raise SweepError(
            f"hydra.sweeper.storage={storage} is not a database URL. Use sqlite:///<file>, "
            "postgresql://user:password@host:port/db or journal:///<file>."
        ) from None
    if url.drivername == "postgresql":  # SQLAlchemy's default driver is psycopg2: we ship psycopg 3
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return storage
    path = Path(url.database)
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def printable_url(storage: str) -> str:
    """The storage URL to print: a database server's password masked, a SQLite file's path
    with one slash between folders (``logs/`` + ``/optuna``), as Hydra reads it back in an
    override without quotes."""
    storage = str(storage)
    if storage.startswith(JOURNAL):
        return storage
    url = make_url(storage)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return f"sqlite:///{Path(url.database)}"
    return url.render_as_string(hide_password=True)


def open_storage(
    url: str,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    stale_callback: Any = None,
) -> BaseStorage:
    """The storage object of ``url``, checked: one ``SweepError`` if it cannot be used."""
    if url.startswith(JOURNAL):
        path = url[len(JOURNAL) :]
        try:
            # a lock file beside the log: works on file systems without symlinks too
            return JournalStorage(JournalFileBackend(path, lock_obj=None))
        except OSError as error:
            raise SweepError(f"Cannot open the journal storage {path}: {error}") from None
    heartbeat = {}
    if heartbeat_interval:
        heartbeat = dict(
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=stale_callback,
        )
    try:
        return _rdb_storage(url, heartbeat)
    except RuntimeError as error:
        if "optuna storage upgrade" not in str(error):
            raise
        raise SweepError(
            f"The study database {url} was written by an older Optuna (table schema "
            f"{schema_of(error)}). Upgrade it in place (back it up first) with: "
            f"uv run --frozen optuna storage upgrade --storage {url}"
        ) from None
    except ImportError as error:
        raise SweepError(
            f"hydra.sweeper.storage={url}: no database driver for it ({error.__cause__ or error})."
        ) from None
    except Exception as error:  # sqlalchemy's OperationalError and kin: the server said no
        first = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        shown = make_url(url).render_as_string(hide_password=True)
        if make_url(url).get_backend_name() == "sqlite":
            raise SweepError(
                f"Cannot open the study database {shown}: {first}. Point "
                "hydra.sweeper.storage at an Optuna study file, or at a new path."
            ) from None
        raise SweepError(
            f"Cannot reach the study storage {shown}: {first}. Start the database server (for "
            "a local PostgreSQL: make postgres), fix hydra.sweeper.storage, or use "
            "sqlite:///<file> on one machine."
        ) from None


def _rdb_storage(url: str, heartbeat: dict[str, Any], attempts: int = 5) -> RDBStorage:
    """Optuna's RDBStorage of ``url``. Processes that open a new database at the same moment
    (parallel sweeps, two cluster sessions on one study) each create its tables and stamp
    its schema version: all but one then fail ("table studies already exists", "UNIQUE
    constraint failed: alembic_version"; 8 of 10 rounds of 4 processes on a new SQLite
    file). Those errors mean the database now exists: open it again."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    def open_once() -> RDBStorage:
        with warnings.catch_warnings():
            # the heartbeat arguments are marked experimental since Optuna 2.9
            warnings.simplefilter("ignore", ExperimentalWarning)
            return RDBStorage(url, engine_kwargs=engine_kwargs(url), **heartbeat)

    for attempt in range(1, attempts):
        try:
            return open_once()
        except (IntegrityError, OperationalError) as error:
            if not isinstance(error, IntegrityError) and "already exists" not in str(error):
                raise
        time.sleep(0.2 * attempt)
    return open_once()


def engine_kwargs(url: str) -> dict[str, Any]:
    """Fail fast on a server that does not answer; wait on a SQLite file that is busy."""
    backend = make_url(url).get_backend_name()
    if backend == "postgresql":
        return {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    if backend == "sqlite":
        # parallel jobs report to the same file: wait for its lock instead of failing
        return {"connect_args": {"timeout": 60}}
    return {}


def schema_of(error: RuntimeError) -> str:
    """The "set up by optuna x" part of Optuna's schema error, if it says it."""
    text = str(error)
    start = text.find("set up by")
    return text[start:].split(")")[0] if start >= 0 else "unknown"


def study_sizes(storage: BaseStorage) -> dict[str, int]:
    """The number of trials of each study in the storage."""
    return {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage=storage)}


def fail_stale_trials(study: optuna.Study) -> list[int]:
    """Mark FAIL the running trials whose heartbeat stopped; their numbers."""
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    if not before:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    after = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    return sorted(before - after)


def retry(study: optuna.Study, trial: FrozenTrial) -> None:
    """Enqueue a failed trial's parameters again (``hydra.sweeper.retry_failed=true``).

    Not Optuna's ``RetryHeartbeatStaleTrialCallback``: it copies the failed trial's
    user attributes (its run directory, why it failed) onto the new trial.
    """
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs={"retry_of": trial.number},
        )
    )


class Heartbeat:
    """Record a heartbeat for the running trials every ``interval`` seconds, in a thread."""

    def __init__(self, storage: BaseStorage, trial_ids: list[int], interval: int | None) -> None:
        self.storage, self.trial_ids, self.interval = storage, trial_ids, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.beat, daemon=True)

    def beat(self) -> None:
        while True:
            for trial_id in self.trial_ids:
                self.storage.record_heartbeat(trial_id)
            if self.stop.wait(self.interval):
                return

    def __enter__(self) -> Heartbeat:
        # the storage as opened (a study wraps it in a cache): an RDB storage with a heartbeat
        if self.interval and isinstance(self.storage, RDBStorage):
            self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()
