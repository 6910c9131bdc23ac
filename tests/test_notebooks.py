"""The notebooks run end to end on runs the tests make, and the runs API reads them right."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from src.utils import runs
from src.utils.errors import UserInputError
from tests.conftest import ROOT, run_cli, vimh_overrides

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


def test_learning_curves_of_runs_without_the_metric_say_so(log_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    run_dirs = list(runs.list_runs(log_dir)["run_dir"])
    ax = runs.plot_learning_curves(run_dirs, metric="val/acc")
    assert len(ax.lines) == 3 and all(len(line.get_xdata()) >= 1 for line in ax.lines)
    # the legend tells the runs apart: every run's paths.log_dir=<long tmp path> came first
    # and the labels, cut to 60 characters, lost the lr the multirun's two jobs differ by
    labels = [line.get_label() for line in ax.lines]
    assert len(set(labels)) == 3, labels
    assert sum("model.optimizer.lr=0.003" in label.split() for label in labels) == 1, labels
    assert not any("paths.log_dir" in label for label in labels), labels
    assert f"paths.log_dir={log_dir}" in ax.get_legend().get_title().get_text()  # shared: once
    # classification runs never logged val/r2: an error naming it, not an empty plot
    with pytest.raises(UserInputError, match="none of the 3 runs has val/r2 in a CSV log"):
        runs.plot_learning_curves(run_dirs, metric="val/r2")


def fake_run(run_dir: Path, overrides: list[str], task: str = "train") -> Path:
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(f"task_name: {task}\n")
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    return run_dir


def test_a_resumed_runs_history_joins_its_csv_versions(tmp_path: Path) -> None:
    """Each resume starts a new csv/version_<n>: the history is all of them in version
    order (10 after 2), the later value where an epoch was logged twice (stopped, run
    again); before, only the newest version was read and the runs's first epochs were lost."""
    run = fake_run(tmp_path / "run", ["model.optimizer.lr=0.01"])
    rows = {
        0: "epoch,step,train/loss,val/acc\n0,9,1.0,\n0,9,,0.3\n",
        2: "epoch,step,train/loss,val/acc\n1,19,0.8,0.5\n",  # stopped in epoch 1's val
        10: "epoch,step,train/loss,val/acc\n1,19,0.8,0.7\n2,29,0.6,0.8\n",
    }
    for version, text in rows.items():
        (run / "csv" / f"version_{version}").mkdir(parents=True)
        (run / "csv" / f"version_{version}" / "metrics.csv").write_text(text)
    history = runs.load_metrics(run)
    assert history["epoch"].tolist() == [0, 1, 2]
    assert history["val/acc"].tolist() == [0.3, 0.7, 0.8]
    assert runs.run_summary(run)["val/acc"] == 0.8
    assert runs.run_label(run) == "model.optimizer.lr=0.01"  # the legend tells runs apart
    assert runs.run_label(fake_run(tmp_path / "bare", [])) == "bare"


def test_learning_curves_name_the_runs_left_out_and_the_title_counts_the_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A logger=tensorboard (mlflow, wandb) run has final metrics but no CSV history: its
    curve was left out without a word, and the notebook's title still counted it
    ("val/acc of the latest 2 finished runs" over one line)."""
    import matplotlib

    matplotlib.use("Agg")
    logs = tmp_path / "logs"
    with_csv = fake_run(logs / "train" / "runs" / "a", ["logger=csv"])
    (with_csv / "csv" / "version_0").mkdir(parents=True)
    (with_csv / "csv" / "version_0" / "metrics.csv").write_text(
        "epoch,step,val/acc\n0,9,0.5\n1,19,0.8\n"
    )
    without = fake_run(logs / "train" / "runs" / "b", ["logger=tensorboard"])
    for run in (with_csv, without):
        (run / "run_status.json").write_text('{"status": "finished", "metrics": {"val/acc": 0.8}}')
    ax = runs.plot_learning_curves([with_csv, without], metric="val/acc")
    assert len(ax.lines) == 1
    ax.figure.canvas.draw()  # a 2-epoch run's axis reads 0, 1: not 0.0, 0.2, ..., 1.0
    assert {t.get_text() for t in ax.get_xticklabels()} <= {"−1", "0", "1", "2"}
    said = capsys.readouterr().out
    assert "left out 1 of the 2 runs" in said and str(without) in said and "logger=csv" in said
    # the notebook's cells up to its learning curves, run here to read the plot's title
    namespace = first_cells("inspect_runs.ipynb", 3, {"LOG_DIR": str(logs)}, monkeypatch)
    assert namespace["ax"].get_title() == "val/acc: 1 of the latest 2 finished runs"
    assert "left out 1 of the 2 runs" in capsys.readouterr().out


def test_a_tools_output_inside_a_run_is_listed_as_derived(tmp_path: Path) -> None:
    """merge-lora's <run>/merged and fuse's <fuse run>/<method>/<task> carry their source
    run's config and no status: they are "derived" from the run they sit in, not
    training runs of unknown status."""
    lora = fake_run(tmp_path / "train" / "runs" / "a", ["experiment=lora_digits"])
    (lora / "run_status.json").write_text('{"status": "finished"}')
    fake_run(lora / "merged", ["experiment=lora_digits"])
    fused = fake_run(tmp_path / "fuse" / "runs" / "b", [], task="fuse")
    (fused / "run_status.json").write_text('{"status": "finished"}')
    fake_run(fused / "ties" / "task1", ["experiment=lora_digits"])
    table = runs.list_runs(tmp_path).set_index("run_dir")
    assert table.loc[str(lora), "status"] == "finished"
    assert table.loc[str(lora / "merged"), ["task", "status", "derived_from"]].tolist() == [
        "train", "derived", str(lora)
    ]  # fmt: skip
    assert table.loc[str(fused / "ties" / "task1"), ["task", "status"]].tolist() == [
        "fuse", "derived"
    ]  # fmt: skip


def test_a_finders_run_is_listed_under_its_task(tmp_path: Path) -> None:
    """lr_find.yaml names its task ``${find}_find``: Hydra saves the config unresolved, and
    the runs table showed the task as ``${find}_find``, not lr_find."""
    done = run_cli(
        "tools/find_lr_batch_size.py",
        f"paths.log_dir={tmp_path}",
        "lr_find.num_training=20",
        "extras.print_config=false",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (row,) = runs.list_runs(tmp_path).to_dict("records")
    assert row["task"] == "lr_find" and row["status"] == "finished"


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
    # training finished, then the metric lookup failed: failed, with the metrics it logged
    assert row["status"] == "failed" and "val/nope" in row["error"]
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


def first_cells(
    notebook: str, count: int, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> dict:
    """The namespace after the notebook's first ``count`` code cells, run in this process
    (to read its matplotlib objects: axes, titles, labels)."""
    import matplotlib

    matplotlib.use("Agg")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(ROOT / "notebooks")
    book = nbformat.read(ROOT / "notebooks" / notebook, as_version=4)
    code = [cell.source for cell in book.cells if cell.cell_type == "code"]
    namespace: dict = {}
    exec("\n".join(code[:count]), namespace)  # noqa: S102 - the project's own notebook
    return namespace


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
    assert "metrics.test/acc" in text  # the MLflow table, its runs by name
    assert "tags.mlflow.runName" in text and "run_id" not in text
    assert "IProgress not found" not in text  # tqdm's warning without ipywidgets
    html = "".join(
        o["data"]["text/html"] for c in book.cells for o in c.get("outputs", [])
        if "Plotly.newPlot(" in o.get("data", {}).get("text/html", "")
    )  # fmt: skip
    figure = html.split("Plotly.newPlot(", 1)[1]  # the figure, after plotly.js itself
    assert "#440154" in figure and "rgb(247.0, 251.0, 255.0)" not in figure  # viridis, no white


def test_inspect_runs_notebook_without_a_csv_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh logs/ (no run yet) stopped the notebook with KeyError: 'multirun'; logs of
    logger=tensorboard runs only stopped it at the learning curves, with a UserInputError
    saying the runs logged no val/acc (they did, to TensorBoard), and the cells after it
    never ran. Now each says what is missing and the notebook runs to its end."""
    empty = tmp_path / "empty"
    empty.mkdir()
    text = text_of(execute("inspect_runs.ipynb", {"LOG_DIR": str(empty)}, monkeypatch))
    assert f"0 runs under {empty}" in text
    assert "no learning curves: no finished training run logged val/acc" in text
    assert "no multirun yet" in text and "no MLflow database" in text
    logs = tmp_path / "tensorboard"
    done = run_cli(
        "train.py", f"paths.log_dir={logs}", "trainer.max_epochs=1", "logger=tensorboard", *QUIET
    )
    assert done.returncode == 0, done.stderr[-2000:]
    text = text_of(execute("inspect_runs.ipynb", {"LOG_DIR": str(logs)}, monkeypatch))
    assert f"1 runs under {logs}" in text
    assert "none of the latest 1 finished runs has val/acc in a CSV log" in text
    assert "no multirun yet" in text
    with pytest.raises(CellExecutionError, match="no finished training run under"):
        execute("inspect_model.ipynb", {"LOG_DIR": str(empty), "RUN_DIR": ""}, monkeypatch)


def test_parallel_coordinate_lines_follow_the_objective_in_viridis() -> None:
    """Optuna's white-to-blue scale drew the worst trial (the best, minimising) white."""
    import optuna

    for direction, first in (("maximize", "rgb(68, 1, 84)"), ("minimize", "rgb(253, 231, 37)")):
        study = optuna.create_study(direction=direction)
        x = optuna.distributions.FloatDistribution(0, 1)
        for value in (0.1, 0.5, 0.9):
            study.add_trial(
                optuna.trial.create_trial(params={"x": value}, distributions={"x": x}, value=value)
            )
        figure = optuna.visualization.plot_parallel_coordinate(study, target_name="v")
        runs.recolour_parallel_coordinate(figure)
        colours = [t.line.color for t in figure.data if t.mode == "lines"]
        assert colours[0] == first and len(set(colours)) == 3, colours
        assert figure.data[-1].marker.colorscale[0][1] == "#440154"  # the bar: viridis too


def test_inspect_model_notebook(log_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    single = next(r for r in runs.find_runs(log_dir) if "multiruns" not in r.parts)
    book = execute(
        "inspect_model.ipynb", {"LOG_DIR": str(log_dir), "RUN_DIR": str(single)}, monkeypatch
    )
    accuracy = float(text_of(book).split("test accuracy of the best checkpoint: ")[1].split()[0])
    logged = runs.run_summary(single)["test/acc"]
    assert accuracy == pytest.approx(logged, abs=1e-4)  # the notebook reproduces the run's test


def checkpoint_epoch(run_dir: Path) -> int:
    import torch

    from src.utils.checkpoints import best_checkpoint

    return torch.load(best_checkpoint(run_dir), map_location="cpu", weights_only=True)["epoch"]


def test_inspect_model_names_the_checkpoint_epoch(log_dir: Path, monkeypatch) -> None:
    single = next(r for r in runs.find_runs(log_dir) if "multiruns" not in r.parts)
    book = execute("inspect_model.ipynb", {"RUN_DIR": str(single)}, monkeypatch)
    assert f", epoch {checkpoint_epoch(single)};" in text_of(book)
    images = [
        o for c in book.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})
    ]
    assert len(images) == 2  # the confusion matrix and the samples


def screenshot(book: nbformat.NotebookNode, path: Path) -> None:
    """The executed notebook as HTML, photographed by headless chromium (make chromium)."""
    import shutil

    from nbconvert import HTMLExporter

    html, _ = HTMLExporter().from_notebook_node(book)
    page = path.with_suffix(".html")
    page.write_text(html)
    done = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--screenshot={path}", "--window-size=1100,3200", "--virtual-time-budget=5000",
         page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and path.stat().st_size > 10_000, done.stderr[-2000:]
    keep = os.environ.get("NOTEBOOK_SCREENSHOTS")  # a folder to keep them in, to look at
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)


@pytest.fixture(scope="module")
def task_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One regression run (diabetes), one of two targets (signals: frequency and damping)
    and one multihead VIMH run (an ordinal pitch head, a regression velocity head)."""
    logs = tmp_path_factory.mktemp("task_logs")
    found = {}
    for task, overrides in (
        ("regression", ["experiment=diabetes_mlp", "trainer.max_epochs=3"]),
        ("two_targets", ["experiment=signals_cnn1d", "trainer.max_epochs=1"]),
        ("multihead", ["experiment=vimh_cnn", "trainer.max_epochs=2",
                       "+data.head_kinds={note_number: ordinal}",
                       *vimh_overrides(logs / "data", 300)]),
    ):  # fmt: skip
        done = run_cli("train.py", f"paths.log_dir={logs / task}", *overrides, *QUIET)
        assert done.returncode == 0, done.stderr[-2000:]
        (found[task],) = runs.find_runs(logs / task)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("task", ["regression", "multihead"])
def test_inspect_model_notebook_for_every_task(task, task_runs, tmp_path, monkeypatch) -> None:
    run = task_runs[task]
    book = execute("inspect_model.ipynb", {"RUN_DIR": str(run)}, monkeypatch)
    text = text_of(book)
    assert f", epoch {checkpoint_epoch(run)};" in text
    logged = runs.run_summary(run)
    if task == "multihead":  # each class head's accuracy is the run's own test metric
        heads = re.findall(r"test accuracy of the best checkpoint \((\w+)\): ([\d.]+)", text)
        assert heads, text[-2000:]
        for head, accuracy in heads:
            assert float(accuracy) == pytest.approx(logged[f"test/{head}/acc"], abs=1e-3)
        assert "regression heads' test MAE" in text
        # the MAE line holds regression heads only (an ordinal head, with classes, was in it)
        line = next(x for x in text.splitlines() if "regression heads' test MAE" in x)
        assert "note_velocity/mae" in line
        assert not any(f"test/{head}/" in line for head, _ in heads)
    screenshot(book, tmp_path / f"inspect_model_{task}.png")


@pytest.mark.slow
def test_inspect_models_confusion_matrix_names_the_head_and_its_scale(
    task_runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notebook's confusion matrix of a head with more than 20 classes (note_number:
    49) had no numbers in its cells and no colour bar: shades of counts without a scale;
    its axes read "True label" and "Predicted label", not the head."""
    run = task_runs["multihead"]
    env = {"LOG_DIR": str(run.parents[2]), "RUN_DIR": str(run)}
    namespace = first_cells("inspect_model.ipynb", 3, env, monkeypatch)
    ax, count = namespace["ax"], namespace["count"]
    assert count > 20 and not ax.texts  # too many classes to write each cell's count
    assert len(ax.figure.axes) == 2  # the matrix and its colour bar
    assert ax.figure.axes[1].get_ylabel() == "test samples"
    assert ax.get_xlabel() == "predicted note_number" and ax.get_ylabel() == "true note_number"


@pytest.mark.slow
def test_the_regression_panels_titles_do_not_overlap(
    task_runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each panel of predicted against true was titled with its MAE and the checkpoint:
    two targets side by side (signals: frequency, damping), the titles ran into each other
    ("...epoch 1)amping: MAE..."). The checkpoint is named once, above them."""
    run = task_runs["two_targets"]
    env = {"LOG_DIR": str(run.parents[2]), "RUN_DIR": str(run)}
    namespace = first_cells("inspect_model.ipynb", 4, env, monkeypatch)
    figure, (left, right) = namespace["fig"], namespace["axes"][0]
    figure.canvas.draw()
    boxes = [ax.title.get_window_extent() for ax in (left, right)]
    assert not boxes[0].overlaps(boxes[1]), [left.get_title(), right.get_title()]
    assert left.get_title().startswith("frequency: MAE")
    assert namespace["CKPT"] in figure.get_suptitle()


@pytest.mark.slow
def test_notebook_screenshots(log_dir: Path, tmp_path: Path, monkeypatch) -> None:
    book = execute("inspect_runs.ipynb", {"LOG_DIR": str(log_dir)}, monkeypatch)
    html = "\n".join(
        str(o.get("data", {}).get("text/html", ""))
        for c in book.cells
        for o in c.get("outputs", [])
    )
    assert "parcoords" in html  # optuna's parallel-coordinates figure, plotly.js inside
    screenshot(book, tmp_path / "inspect_runs.png")
    single = next(r for r in runs.find_runs(log_dir) if "multiruns" not in r.parts)
    book = execute("inspect_model.ipynb", {"RUN_DIR": str(single)}, monkeypatch)
    screenshot(book, tmp_path / "inspect_model_classification.png")
