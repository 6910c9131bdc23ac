"""What a person reads on the console: the config tree once per multirun, no advertising
or migration chatter, no FLOPs column of zeros, and a closing table of every multirun's
jobs (failed ones with their error, whose traceback is in the job's log file)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from src.utils.multirun_summary import summary_table
from tests.conftest import compose_config, run_cli


def result(job: int, lr: str, acc: float | None, error: str | None = None) -> dict:
    metrics = {} if acc is None else {"val/acc_best": acc, "test/acc": acc - 0.01}
    return {
        "job": job,
        "overrides": [f"model.optimizer.lr={lr}"],
        "status": "failed" if error else "finished",
        "error": error,
        "metrics": metrics,
    }


def test_summary_table_sorts_by_the_optimized_metric_and_names_failures() -> None:
    results = [
        result(0, "0.001", 0.90),
        result(1, "-1", None, "ValueError: Invalid learning rate: -1"),
        result(2, "0.01", 0.97),
    ]
    rows = summary_table(results, [("val/acc_best", False)], 4).splitlines()
    assert rows[0] == "| job | overrides | val/acc_best | test/acc | status |"
    assert [row.split("|")[1].strip() for row in rows[2:]] == ["2", "0", "1"]
    assert "FAILED: ValueError: Invalid learning rate: -1" in rows[4]
    # a loss is minimised: the smallest first
    losses = [result(0, "a", 0.5), result(1, "b", 0.2)]
    rows = summary_table(losses, [("val/acc_best", True)], 0).splitlines()
    assert rows[2].startswith("| 1 |")


def test_summary_table_lists_pruned_jobs_after_the_finished_ones() -> None:
    """A pruned trial's metrics are those of fewer epochs: below every finished job, even
    with a better value, and said so (it ended cleanly, so it was shown "ok" before)."""
    pruned = result(1, "0.1", 0.99) | {"status": "pruned", "pruned_after_epoch": 1}
    results = [result(0, "0.001", 0.90), pruned, result(2, "-1", None, "ValueError: lr")]
    rows = summary_table(results, [("val/acc_best", False)], 0).splitlines()
    assert [row.split("|")[1].strip() for row in rows[2:]] == ["0", "1", "2"]
    assert rows[2].endswith("| ok |") and rows[3].endswith("| pruned after 2 epochs |")
    # the epoch is 0-based: "pruned after epoch 0" read as if the trial never trained
    first = [result(0, "0.1", 0.5) | {"status": "pruned", "pruned_after_epoch": 0}]
    assert summary_table(first, [("val/acc_best", False)], 0).endswith("| pruned after 1 epoch |")


def test_model_summary_has_no_flops_column_of_zeros(capsys) -> None:
    from src.callbacks.model_summary import ModelSummary

    data = [
        (" ", ["0", "1"]),
        ("Name", ["net", "criterion"]),
        ("Type", ["SimpleDenseNet", "CrossEntropyLoss"]),
        ("Params", ["34.4 K", "0"]),
        ("Mode", ["train", "train"]),
        ("FLOPs", ["0", "0"]),
    ]
    ModelSummary.summarize(data, 34400, 34400, 0.138, {"train": 2, "eval": 0}, 0)
    out = capsys.readouterr().out
    assert "SimpleDenseNet" in out and "Total params" in out
    assert "FLOPs" not in out


def test_debug_run_shows_no_third_party_debug_lines_deprecations_or_zero_flops(
    tmp_path: Path,
) -> None:
    """debug=* sets the root logger to DEBUG and shows warnings: matplotlib's start-up lines,
    Lightning's own LeafSpec deprecation and Lightning's default summary (FLOPs all 0, as
    the model has no example input) came with it."""
    done = run_cli("train.py", "debug=fdr", f"paths.log_dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout + done.stderr
    assert "Params" in out and "Modules in train mode" in out  # the summary is still there
    assert "matplotlib" not in out and "LeafSpec" not in out and "FLOPs" not in out


def test_config_tree_keeps_long_lines_whole_in_its_file_and_a_pipe(tmp_path: Path, capsys) -> None:
    """rich renders a file or a pipe 80 columns wide and cut longer lines: a long path lost
    its end in config_tree.log and in a redirected console."""
    from src.utils.rich_utils import print_config_tree

    long_dir = tmp_path / ("a_rather_long_directory_name_" * 4) / "the_end_of_the_path"
    cfg = compose_config("train.yaml", [f"paths.data_dir={long_dir}"], tmp_path)
    print_config_tree(cfg, resolve=False, save_to_file=True, to_console=True)
    saved = (tmp_path / "config_tree.log").read_text()
    printed = capsys.readouterr().out
    for text in (saved, printed):
        assert f"data_dir: {long_dir}\n" in text and "max_epochs" in text
        assert all(line == line.rstrip() for line in text.splitlines())  # no padding


@pytest.mark.parametrize("callbacks", ["default", "none"])
def test_progress_bar_in_a_log_file_shows_each_metric_on_one_line_and_current(
    callbacks: str, tmp_path: Path
) -> None:
    """Written to a pipe (a log file, CI), the bar's metrics came wrapped between a name and
    its value in 80 columns; each now has a line of its own beside the bar. And the epoch's
    training loss is the epoch's own, not the one before (the module logs it after the
    bar's own epoch-end hook). callbacks=none (and the debug configs' callbacks: null) got
    Lightning's own bar, with both faults and ``v_num: 0.000``."""
    done = run_cli(
        "train.py", "trainer.max_epochs=2", f"callbacks={callbacks}", f"paths.log_dir={tmp_path}"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", done.stdout).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Epoch 1/1"))
    assert re.search(r"v_num: 0(\s|$)", lines[start]), lines[start]  # not 0.000
    metrics = []
    for line in lines[start + 1 :]:
        if not line.startswith(" "):  # the log's next line: the bar's block has ended
            break
        metrics.append(line.strip())
    assert all(re.fullmatch(r"[\w/]+: \d+\.\d{3}", m) for m in metrics), metrics
    shown = dict(m.split(": ") for m in metrics)
    # LHT's bar: train/acc too (debug=overfit says to read it; it was on no bar or log)
    assert set(shown) == {"val/loss", "val/acc", "val/acc_best", "train/loss", "train/acc"}
    (csv,) = tmp_path.glob("train/runs/*/csv/version_0/metrics.csv")
    logged = pd.read_csv(csv)
    train_loss = logged.dropna(subset=["train/loss"]).set_index("epoch")["train/loss"]
    assert shown["train/loss"] == f"{train_loss[1]:.3f}" != f"{train_loss[0]:.3f}"
    train_acc = logged.dropna(subset=["train/acc"]).set_index("epoch")["train/acc"]
    assert shown["train/acc"] == f"{train_acc[1]:.3f}"
    val_acc = logged.dropna(subset=["val/acc"]).set_index("epoch")["val/acc"]
    assert shown["val/acc"] == f"{val_acc[1]:.3f}"


def test_progress_bar_leaves_a_terminal_width_or_a_given_layout_alone(monkeypatch) -> None:
    from lightning.pytorch.callbacks.progress.rich_progress import RichProgressBarTheme

    from src.callbacks.progress_bar import LOG_WIDTH, RichProgressBar

    monkeypatch.delenv("COLUMNS", raising=False)  # pytest-xdist's workers set it
    assert RichProgressBar()._console_kwargs == {"width": LOG_WIDTH}  # pytest: not a terminal
    theme = RichProgressBarTheme(metrics_text_delimiter=" | ")
    given = RichProgressBar(theme=theme, console_kwargs={"width": 100})
    assert given._console_kwargs == {"width": 100} and given.theme is theme
    monkeypatch.setenv("COLUMNS", "120")
    columns = RichProgressBar()
    assert columns._console_kwargs == {} and columns.theme.metrics_text_delimiter == " "


@pytest.mark.slow
def test_multirun_console_tree_once_table_at_the_end_traceback_in_log(tmp_path: Path) -> None:
    done = run_cli(
        "train.py",
        "-m",
        "model.optimizer.lr=0.001,-1,0.01",
        "trainer.max_epochs=2",
        "logger=mlflow",
        f"paths.log_dir={tmp_path}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    out = done.stdout + done.stderr
    assert out.count("CONFIG") == 1, out[-3000:]  # the tree, once, from job 0
    for job in ("0", "2"):  # saved per job that runs (job 1 stops at the config check)
        assert (tmp_path / "sweep" / job / "config_tree.log").is_file()
    assert "💡" not in out and "alembic" not in out and "FLOPs" not in out
    table = out[out.index("Multirun summary") :]
    assert "every job: trainer.max_epochs=2" in table  # shared overrides once, above the rows
    rows = [line for line in table.splitlines() if re.match(r"\| \d ", line)]
    assert [row.split("|")[1].strip() for row in rows][2] == "1", table  # the failed job last
    assert rows[2].split("|")[2].strip() == "model.optimizer.lr=-1"
    assert "FAILED:" in rows[2] and "lr=-1" in rows[2].split("|")[-2]  # the error itself
    values = [float(row.split("|")[3]) for row in rows[:2]]
    assert values[0] >= values[1] > 0.5  # sorted by val/acc_best, and both runs learned
    assert (tmp_path / "sweep" / "multirun_summary.md").read_text().strip() in table
    log = (tmp_path / "sweep" / "1" / "train.log").read_text()
    assert (
        "Traceback (most recent call last)" in log
        and "UserInputError: model.optimizer.lr=-1" in log
    )
    assert "Traceback" not in (tmp_path / "sweep" / "0" / "train.log").read_text()


def test_summary_table_shows_a_parameter_count_whole() -> None:
    """digits_pareto_optuna's second objective, model/params/total, read 4.974e+04."""
    jobs = [result(0, "0.01", 0.35), result(1, "0.1", 0.3)]
    for job, size in zip(jobs, (49740.0, 2579.0), strict=True):
        job["metrics"] |= {"model/params/total": size, "test/loss": 2.2318}
    objectives = [("val/acc_best", False), ("model/params/total", True)]
    rows = summary_table(jobs, objectives, 4).splitlines()
    assert rows[0] == (
        "| job | overrides | val/acc_best | model/params/total | test/acc | test/loss | status |"
    )
    assert rows[2] == "| 0 | model.optimizer.lr=0.01 | 0.35 | 49740 | 0.34 | 2.232 | ok |"
    assert rows[3] == "| 1 | model.optimizer.lr=0.1 | 0.3 | 2579 | 0.29 | 2.232 | ok |"


def test_a_disabled_bar_passes_over_validation_batches() -> None:
    """DDP's ranks 1.. disable the bar, which then never learns the current dataloader: its
    throttle asked for that dataloader's batch count and failed Lightning's assertion, so
    trainer=ddp_sim with the default callbacks crashed in rank 1's sanity check."""
    from src.callbacks.progress_bar import RichProgressBar

    bar = RichProgressBar()
    bar.disable()
    bar.on_validation_batch_end(None, None, None, None, batch_idx=0)  # no AssertionError


def test_the_speed_column_of_a_stage_of_one_step_is_its_rate() -> None:
    """rich has no speed for a task advanced once (it measures between updates): the
    column said 0.00it/s for a one-batch stage (fast_dev_run, a one-row prediction)."""
    from rich.progress import Progress

    from src.callbacks.progress_bar import SpeedColumn

    column = SpeedColumn(style="white")
    with Progress(column, disable=True) as progress:
        idle = progress.add_task("Predicting", total=1)
        assert str(column.render(progress.tasks[idle])) == ""  # nothing done: no figure
        progress.advance(idle)
        progress.stop_task(idle)
        task = progress.tasks[idle]
        assert task.speed is None  # rich's own estimate
        shown = str(column.render(task))
        assert re.fullmatch(r"\d+\.\d\dit/s", shown) and shown != "0.00it/s", shown


def test_the_bar_shows_the_version_number_of_several_loggers() -> None:
    """logger=many_loggers (CSV, TensorBoard, MLflow): Lightning joins the versions, 0 and
    the MLflow run id, and shows the last four characters, "v_num: c32b". The bar shows the
    version number, as with CSV or TensorBoard alone."""
    from types import SimpleNamespace

    from src.callbacks.progress_bar import RichProgressBar

    def shown(*versions: object) -> object:
        loggers = [SimpleNamespace(version=v) for v in versions]
        trainer = SimpleNamespace(loggers=loggers, progress_bar_metrics={})
        return RichProgressBar().get_metrics(trainer, None).get("v_num")

    assert shown(3, 3, "5f2d0b9a7c1e4e0c9b6a8d7e2f1ac32b") == "3"
    assert shown("5f2d0b9a7c1e4e0c9b6a8d7e2f1ac32b", 2) == "2"  # the first number
    assert shown(4) == "4"
    assert shown("abc123", "ffee99") == "ee99"  # no number: Lightning's tail of the ids
