"""The notebooks run end to end on runs the tests make, and the runs API reads them right."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from src.utils import runs
from tests.conftest import ROOT, run_cli

QUIET = ["extras.print_config=false", "callbacks.rich_progress_bar=null"]


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Logs of one single run (CSV + MLflow) and one two-job multirun."""
    logs = tmp_path_factory.mktemp("logs")
    single = run_cli(
        "train.py", f"paths.log_dir={logs}", "trainer.max_epochs=3", "logger=many_loggers", *QUIET
    )
    assert single.returncode == 0, single.stderr[-2000:]
    sweep = run_cli(
        "train.py",
        "-m",
        f"paths.log_dir={logs}",
        "trainer.max_epochs=1",
        "model.optimizer.lr=0.0003,0.003",
        *QUIET,
    )
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    return logs


def test_runs_table(log_dir: Path) -> None:
    table = runs.list_runs(log_dir)
    assert len(table) == 3 and set(table["status"]) == {"finished"}
    assert table["multirun"].tolist().count(True) == 2
    assert (table["test/acc"] > 0.5).all() and "val/acc_best" in table
    (multirun,) = {Path(d).parent for d in table.loc[table["multirun"], "run_dir"]}
    trials = runs.multirun_table(multirun, metric="val/acc_best")
    assert sorted(trials["model.optimizer.lr"]) == [0.0003, 0.003]
    assert trials.attrs["swept"] == ["model.optimizer.lr"]
    assert trials["val/acc_best"].is_monotonic_decreasing
    history = runs.load_metrics(table["run_dir"].iloc[0])
    assert history["val/acc"].notna().sum() == 3  # one validation per epoch


def test_failed_run_is_marked_failed(tmp_path: Path) -> None:
    done = run_cli(
        "train.py",
        f"paths.log_dir={tmp_path}",
        "trainer.max_epochs=1",
        "optimized_metric=val/nope",
        *QUIET,
    )
    assert done.returncode == 1
    (row,) = runs.list_runs(tmp_path).to_dict("records")
    assert row["status"] == "finished"  # training finished; the metric lookup failed after it
    assert "test/acc" in row


def execute(
    notebook: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> nbformat.NotebookNode:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    book = nbformat.read(ROOT / "notebooks" / notebook, as_version=4)
    NotebookClient(
        book,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT / "notebooks")}},
    ).execute()
    return book


def text_of(book: nbformat.NotebookNode) -> str:
    return "\n".join(
        output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
        for cell in book.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
    )  # fmt: skip


def test_inspect_runs_notebook(log_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    book = execute("inspect_runs.ipynb", {"LOG_DIR": str(log_dir)}, monkeypatch)
    text = text_of(book)
    assert f"3 runs under {log_dir}" in text
    assert "2 trials over ['model.optimizer.lr']" in text
    assert "metrics.test/acc" in text  # the MLflow table


def test_inspect_model_notebook(log_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    single = next(r for r in runs.find_runs(log_dir) if "multiruns" not in r.parts)
    book = execute(
        "inspect_model.ipynb", {"LOG_DIR": str(log_dir), "RUN_DIR": str(single)}, monkeypatch
    )
    accuracy = float(text_of(book).split("test accuracy of the best checkpoint: ")[1].split()[0])
    logged = runs.run_summary(single)["test/acc"]
    assert accuracy == pytest.approx(logged, abs=1e-4)  # the notebook reproduces the run's test
