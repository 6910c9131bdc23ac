"""Each callback config, on a tiny run, produces the files or values it promises."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict
from PIL import Image

from src.callbacks import confusion_matrix, sample_grid
from src.callbacks.confusion_matrix import ConfusionMatrix
from src.models.components.head_specs import label_values
from src.train import train
from src.utils.figures import log_figure
from src.vimh.format import read_dataset
from tests.conftest import compose_config, vimh_overrides


def run_with(tmp_path: Path, *callbacks: str, extra: tuple[str, ...] = ()) -> dict:
    chosen = f"callbacks=[default,{','.join(callbacks)}]"  # several options of one group
    cfg = compose_config("train.yaml", ["trainer.max_epochs=2", chosen, *extra], tmp_path)
    metrics, objects = train(cfg)
    return {"metrics": metrics, "objects": objects}


def csv_columns(tmp_path: Path) -> list[str]:
    return (tmp_path / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[0].split(",")


def test_lr_monitor_device_stats_throughput_and_gradients(tmp_path: Path) -> None:
    run = run_with(tmp_path, "lr_monitor", "device_stats", "throughput", "gradient_stats")
    columns = csv_columns(tmp_path)
    assert "lr-Adam" in columns
    assert any(c.endswith("/cpu_percent") for c in columns)  # device telemetry
    assert float(run["metrics"]["train/samples_per_s"]) > 100
    assert "grad/norm" in columns and "grad/net.model.1.weight" in columns
    rows = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[1:]
    norm_at = columns.index("grad/norm")
    measured = [r.split(",") for r in rows if r.split(",")[norm_at]]
    assert [int(r[columns.index("step")]) for r in measured] == [0, 50]  # every 50 steps
    assert all(float(r[norm_at]) > 0 for r in measured)


def test_device_stats_first_cpu_reading_is_a_measurement(tmp_path: Path) -> None:
    """psutil.cpu_percent() answers its first call with a meaningless 0.0: every run's
    first cpu_percent (a short run's only one) read 0 % while the run kept a core busy."""
    run_with(tmp_path, "device_stats", extra=("trainer.log_every_n_steps=10",))
    columns = csv_columns(tmp_path)
    at = columns.index("DeviceStatsMonitor.on_train_batch_start/cpu_percent")
    rows = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[1:]
    readings = [float(r.split(",")[at]) for r in rows if r.split(",")[at]]
    assert len(readings) == 6  # steps 9, 19, ..., 59: every log_every_n_steps
    assert readings[0] > 0, readings


def test_gradient_histograms_show_in_tensorboard_beside_the_per_layer_norms(
    tmp_path: Path,
) -> None:
    """TensorBoard keys a series by its tag and takes the first summary's kind: histograms
    under the per-layer norms' tags (grad/<parameter>) were read as scalars, and its
    HISTOGRAMS tab said "No histogram data was found"."""
    from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator

    run_with(
        tmp_path,
        "gradient_stats",
        extra=("logger=tensorboard", "callbacks.gradient_stats.histograms=true"),
    )
    (events,) = (tmp_path / "tensorboard").glob("version_*")
    accumulator = EventAccumulator(str(events), size_guidance={"tensors": 0})
    accumulator.Reload()
    histograms = set(accumulator.PluginTagToContent("histograms"))
    scalars = set(accumulator.PluginTagToContent("scalars"))
    assert "grad/net.model.1.weight" in scalars  # the norm, a scalar
    assert "grad_hist/net.model.1.weight" in histograms  # its gradient's histogram
    assert not histograms & scalars


def test_confusion_matrix_and_sample_grid(tmp_path: Path, monkeypatch) -> None:
    titles: dict[str, list[str]] = {}
    colours: dict[str, set[str]] = {}

    origins: dict[str, set[str]] = {}
    ticks: dict[str, list[str]] = {}
    axis_names: dict[str, tuple[str, str]] = {}

    def keep_titles(trainer, name, figure):
        titles[name] = [figure.get_suptitle(), *(ax.get_title() for ax in figure.axes)]
        origins[name] = {image.origin for ax in figure.axes for image in ax.images}
        titles[name].append(" ".join(ax.get_ylabel() for ax in figure.axes))  # the colour bar's
        colours[name] = {t.get_color() for t in figure.axes[0].texts}
        ticks[name] = [t.get_text() for t in figure.axes[0].get_xticklabels()]
        axis_names[name] = (figure.axes[0].get_xlabel(), figure.axes[0].get_ylabel())
        return log_figure(trainer, name, figure)

    for module in (confusion_matrix, sample_grid):
        monkeypatch.setattr(module, "log_figure", keep_titles)
    run = run_with(tmp_path, "confusion_matrix", "sample_grid", extra=("logger=many_loggers",))
    # the test figures name the checkpoint tested (the best one) and the epoch it was saved at,
    # not the epoch count the trainer stopped at
    best = Path(run["objects"]["trainer"].checkpoint_callback.best_model_path)
    saved_at = torch.load(best, weights_only=True)["epoch"]
    for name in ("confusion_matrix_test", "samples_test"):
        assert f"{best.name}, epoch {saved_at}" in " ".join(titles[name]), titles[name]
    assert "val, epoch 1" in titles["confusion_matrix_val"]  # the last epoch validated (0-based)
    assert "share of the true class" in titles["confusion_matrix_test"][-1]
    assert colours["confusion_matrix_test"] == {"white", "black"}  # counts readable on dark cells
    assert origins["samples_test"] == {"upper"}  # digits: row 0 at the top, as a picture
    assert ticks["confusion_matrix_test"] == [str(d) for d in range(10)]  # digits: indices
    assert axis_names["confusion_matrix_test"] == (
        "predicted class",
        "true class (numbers: counts)",
    )
    figures = tmp_path / "figures"
    for name in ("confusion_matrix_val", "confusion_matrix_test", "samples_test"):
        with Image.open(figures / f"{name}.png") as image:
            assert image.size[0] > 200 and image.size[1] > 100
    # the images went to TensorBoard too (an event file with more than scalars)
    events = sorted((tmp_path / "tensorboard").rglob("events.out.tfevents.*"))
    assert any(b"confusion_matrix_test" in e.read_bytes() for e in events)
    assert float(run["metrics"]["test/acc"]) > 0.8


def test_figure_callbacks_on_a_regression_say_they_draw_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The diabetes regression has no class heads: the confusion matrix and the sample grid
    drew nothing and said nothing, and the user looked for figures/ in vain. Each now says
    so, once."""
    with caplog.at_level(logging.WARNING):
        run_with(tmp_path, "confusion_matrix", "sample_grid", extra=("experiment=diabetes_mlp",))
    said = [r.getMessage() for r in caplog.records if "draws nothing" in r.getMessage()]
    assert len(said) == 2, said  # once each, not once per batch or epoch
    assert "ConfusionMatrix draws nothing: RegressionModule" in said[0]
    assert "callbacks.sample_grid=null" in said[1]
    assert not (tmp_path / "figures").exists()


def test_confusion_matrix_counts_every_sample_once() -> None:
    callback = ConfusionMatrix()

    class Module:
        def class_predictions(self, outputs, targets):
            return {"": (outputs, targets, 3)}

    callback._update(
        Module(), {"outputs": torch.tensor([0, 1, 2, 2]), "targets": torch.tensor([0, 1, 1, 2])}
    )
    callback._update(Module(), {"outputs": torch.tensor([1]), "targets": torch.tensor([0])})
    expected = torch.tensor([[1, 1, 0], [0, 1, 1], [0, 0, 1]])
    assert torch.equal(callback.counts[""], expected)


def test_class_labels_come_from_the_data_module_or_are_indices() -> None:
    from src.data.components.class_labels import class_labels
    from src.data.digits_datamodule import DigitsDataModule
    from src.utils.errors import UserInputError
    from src.utils.figures import tick_spacing

    assert class_labels(DigitsDataModule(), "", 10) == [str(d) for d in range(10)]
    five_to_nine = DigitsDataModule(digits=[5, 6, 7, 8, 9])  # lora_digits: class 0 is a 5
    assert class_labels(five_to_nine, "", 5) == ["5", "6", "7", "8", "9"]
    assert class_labels(None, "", 3) == ["0", "1", "2"]  # fit(dataloaders): no data module
    with pytest.raises(UserInputError, match=r"names 5 classes .* the model predicts 10"):
        class_labels(five_to_nine, "", 10)
    assert [tick_spacing(n) for n in (10, 20, 21, 49, 88, 256)] == [1, 1, 2, 5, 5, 20]


@pytest.mark.parametrize("every", [0, -1])
def test_gradient_stats_rejects_bad_interval(every: int) -> None:
    from src.callbacks.gradient_stats import GradientStats

    with pytest.raises(ValueError, match="at least 1"):
        GradientStats(every_n_steps=every)


def train_with_bar(tmp_path: Path, *overrides: str) -> dict:
    """A 2-epoch run with the default callbacks' progress bar shown."""
    cfg = compose_config("train.yaml", ["trainer.max_epochs=2", *overrides], tmp_path, quiet=False)
    with open_dict(cfg):
        del cfg.callbacks.model_summary
        cfg.extras.print_config = False
        cfg.trainer.enable_progress_bar = True
    metrics, objects = train(cfg)
    return {"metrics": metrics, "objects": objects}


def test_progress_bar_updates_first_and_last_batch_when_throttled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightning.pytorch.callbacks import RichProgressBar

    batches: list[int] = []
    shown: list[float] = []  # what the bar reads after each update
    lightning_update = RichProgressBar.on_train_batch_end

    def counted(self, trainer, pl_module, outputs, batch, batch_idx):
        batches.append(batch_idx)
        lightning_update(self, trainer, pl_module, outputs, batch, batch_idx)
        shown.append(self.progress.tasks[self.train_progress_bar_id].completed)

    monkeypatch.setattr(RichProgressBar, "on_train_batch_end", counted)
    # one update per 10^9 s: only each epoch's first and last batch are due
    run = train_with_bar(tmp_path, "callbacks.rich_progress_bar.updates_per_second=1e-9")
    last = run["objects"]["trainer"].num_training_batches - 1
    assert last > 10 and batches == [0, last, 0, last]  # 2 epochs
    assert shown == [1, last + 1, 1, last + 1]  # each epoch's bar ends full
    assert float(run["metrics"]["test/acc"]) > 0.8


def test_progress_bar_ends_an_epoch_on_its_last_batch_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SWA's BatchNorm epoch (the one past max_epochs) counts one batch more than it runs:
    its last batch was never due, and the bar stood at the update before (27/33)."""
    from lightning.pytorch.callbacks import RichProgressBar

    shown: list[float] = []  # the bar as each epoch ends
    lightning_end = RichProgressBar.on_train_epoch_end

    def at_end(self, trainer, pl_module):
        shown.append(self.progress.tasks[self.train_progress_bar_id].completed)
        lightning_end(self, trainer, pl_module)

    monkeypatch.setattr(RichProgressBar, "on_train_epoch_end", at_end)
    run = train_with_bar(
        tmp_path,
        "callbacks=[default,swa]",
        "trainer.max_epochs=3",
        "callbacks.rich_progress_bar.updates_per_second=1e-9",  # first and last batch only
    )
    batches = len(run["objects"]["datamodule"].train_dataloader())
    assert shown == [batches] * 4  # 3 epochs and the BatchNorm one
    assert float(run["metrics"]["test/acc"]) > 0.8


def test_progress_bar_stops_without_waiting_out_its_redraw_period(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lightning's drawing thread sleeps a whole period between redraws, and each stage's
    end waited for it; the template's thread ends as soon as it is told to."""
    from lightning.pytorch.callbacks.progress.rich_progress import CustomProgress

    still_drawing: list[bool] = []
    lightning_stop = CustomProgress.stop

    def stop(self) -> None:
        thread = self.live._refresh_thread
        if thread is not None:
            thread.stop()
            thread.join(timeout=5)
            still_drawing.append(thread.is_alive())
        lightning_stop(self)

    monkeypatch.setattr(CustomProgress, "stop", stop)
    # one redraw every 20 s: Lightning's thread would sleep on through the 5 s above
    run = train_with_bar(tmp_path, "callbacks.rich_progress_bar.refresh_rate=0.05")
    assert still_drawing == [False, False]  # the end of fit and of test
    assert float(run["metrics"]["test/acc"]) > 0.8


def test_progress_bar_shows_the_logger_version_as_a_whole_number(tmp_path: Path) -> None:
    from lightning.pytorch.callbacks.progress.rich_progress import MetricsTextColumn

    run = train_with_bar(tmp_path, "logger=csv")
    trainer = run["objects"]["trainer"]
    bar = trainer.progress_bar_callback
    items = bar.get_metrics(trainer, trainer.lightning_module)
    column = MetricsTextColumn(trainer, "", " ", bar.theme.metrics_format)
    column.update(items)
    texts = list(column._generate_metrics_texts())  # what the bar's metric column shows
    assert "v_num: 0" in texts  # Lightning's own formatting showed "v_num: 0.000"
    assert any(re.fullmatch(r"test/acc: 0\.\d{3}", text) for text in texts)  # metrics: .3f


def test_progress_bar_rejects_zero_updates_per_second(tmp_path: Path) -> None:
    from hydra.errors import InstantiationException

    from src.utils.errors import UserInputError

    with pytest.raises((UserInputError, InstantiationException), match="updates_per_second=0"):
        train_with_bar(tmp_path, "callbacks.rich_progress_bar.updates_per_second=0")


def test_checkpoint_every_n_train_steps_still_saves_by_step(tmp_path: Path) -> None:
    # RunCheckpoint skips Lightning's per-batch checks only when no per-step saving is set
    run = run_with(
        tmp_path,
        "lr_monitor",
        extra=(
            "callbacks.model_checkpoint.every_n_train_steps=10",
            "callbacks.model_checkpoint.monitor=null",
            "callbacks.model_checkpoint.save_top_k=-1",
            "callbacks.model_checkpoint.filename='step_{step}'",
        ),
    )
    saved = {p.name for p in (tmp_path / "checkpoints").glob("step_*.ckpt")}
    assert {f"step_{n}.ckpt" for n in (10, 20, 30, 40, 50, 60)} <= saved, saved
    assert float(run["metrics"]["test/acc"]) > 0.8


def test_vimh_figures_name_classes_by_parameter_value(tmp_path: Path, monkeypatch) -> None:
    """A note_number head's classes 0..48 stand for the MIDI notes 40..88: its confusion
    matrix, the sample grid and the classification report name them so (they showed the
    indices 0..48). VIMH inputs are spectrograms whose row 0 is the lowest frequency: the
    grid draws it at the bottom (as a picture, row 0 at the top, they stood upside down)."""
    drawn: dict[str, dict] = {}

    def keep(trainer, name, figure):
        axes = figure.axes[0]
        drawn[name] = {
            "xticks": [t.get_text() for t in axes.get_xticklabels()],
            "yticks": [t.get_text() for t in axes.get_yticklabels()],
            "axes": (axes.get_xlabel(), axes.get_ylabel()),
            "titles": [ax.get_title() for ax in figure.axes if ax.get_title()],
            "origins": {image.origin for ax in figure.axes for image in ax.images},
        }
        return log_figure(trainer, name, figure)

    for module in (confusion_matrix, sample_grid):
        monkeypatch.setattr(module, "log_figure", keep)
    cfg = compose_config(
        "train.yaml",
        ["experiment=vimh_cnn", "trainer.max_epochs=8", "data.batch_size=32", "logger=none",
         "callbacks=[default,confusion_matrix,sample_grid]", *vimh_overrides(tmp_path, 1000)],
        tmp_path,
    )  # fmt: skip
    metrics, objects = train(cfg)
    notes = [str(n) for n in range(40, 89)]  # simple_saw's note_number: 40..88, step 1
    matrix = drawn["confusion_matrix_test_note_number"]
    assert matrix["xticks"] == matrix["yticks"] == [str(n) for n in range(40, 89, 5)]
    assert matrix["axes"] == (
        "predicted note_number (labels every 5 classes)",
        "true note_number",
    )
    assert "confusion_matrix_test_note_velocity" not in drawn  # a regression head
    grid = drawn["samples_test"]
    assert grid["origins"] == {"lower"}
    # each title is "predicted / true" in notes, the true ones those of the test file's first
    # 16 records, as the label bytes decode (label_values)
    head = objects["model"].heads[0]
    test_file = read_dataset(cfg.data.data_dir)[1]["test"]
    true = label_values(torch.from_numpy(test_file.labels[:16, 0]), head).round().int()
    pairs = [title.split(" / ") for title in grid["titles"]]
    assert [t for _, t in pairs] == [str(n) for n in true.tolist()]
    assert all(p in notes for p, _ in pairs)
    assert sum(p == t for p, t in pairs) >= 10  # it learnt pitch (measured: 14 of 16 right)
    report = json.loads((tmp_path / "classification_report.json").read_text())
    assert list(report["note_number"]["per_class"]) == notes
    assert float(metrics["test/note_number/acc"]) > 0.6  # measured: 0.90 (chance: 1/49)
    for name in ("confusion_matrix_test_note_number", "samples_test"):
        assert (tmp_path / "figures" / f"{name}.png").is_file()


def test_early_stopping_resumes_the_state_of_lightnings_own(tmp_path: Path) -> None:
    """Our EarlyStopping keeps its state key (formatted once): a checkpoint written with
    Lightning's class restores its patience count into ours."""
    from lightning.pytorch.callbacks import EarlyStopping as LightningEarlyStopping

    from src.callbacks.early_stopping import EarlyStopping

    theirs = LightningEarlyStopping(monitor="val/acc", mode="max", patience=5)
    theirs.wait_count, theirs.best_score = 3, torch.tensor(0.9)
    ours = EarlyStopping(monitor="val/acc", mode="max", patience=5)
    assert ours.state_key == theirs.state_key == ours.state_key
    saved = {theirs.state_key: theirs.state_dict()}
    ours.load_state_dict(saved[ours.state_key])
    assert ours.wait_count == 3 and float(ours.best_score) == pytest.approx(0.9)


def test_early_stopping_says_when_it_stopped_the_run(tmp_path: Path, caplog) -> None:
    """A run stopped early ended at 'Epoch k/99' with no word why; now one line says it."""
    quick = ["logger=none", "test=false", "+trainer.limit_train_batches=2", "model.optimizer.lr=0"]
    quick.append("model.net.batch_norm=false")  # lr 0 and no running statistics: val/acc stays
    stop = ["callbacks.early_stopping.patience=1", "trainer.max_epochs=5"]
    with caplog.at_level("INFO", logger="src.callbacks.early_stopping"):
        train(compose_config("train.yaml", [*quick, *stop], tmp_path / "stopped"))
        (line,) = [r.getMessage() for r in caplog.records if "Early stopping" in r.getMessage()]
        assert line.startswith("Early stopping ended the run at epoch 1 (patience 1, mode max)")
        assert "val/acc did not improve in the last 1 records. Best score:" in line
        caplog.clear()
        train(compose_config("train.yaml", [*quick, "trainer.max_epochs=1"], tmp_path / "ran"))
        assert "Early stopping" not in caplog.text  # ran its epochs: nothing to say


def test_classification_report_means_over_the_classes_there_are(tmp_path: Path) -> None:
    """A class neither in the test split nor predicted has no precision or recall: the
    macro means leave it out (as torchmetrics' and scikit-learn's do); counted as 0 it kept
    recall_macro at or below 60/256 for a VIMH head of 256 byte classes on 60 test notes,
    every note right or not. Each row says its support."""
    from types import SimpleNamespace

    from src.callbacks.classification_report import ClassificationReport

    true = torch.tensor([0, 0, 1, 1, 2, 2])
    predicted = torch.tensor([0, 0, 1, 1, 2, 1])
    logged: dict[str, float] = {}
    module = SimpleNamespace(
        class_predictions=lambda outputs, targets: {"pitch": (predicted, true, 10)},
        log=lambda name, value, **_: logged.__setitem__(name, float(value)),
    )
    trainer = SimpleNamespace(datamodule=None, is_global_zero=True)
    report = ClassificationReport(str(tmp_path))
    report.on_test_epoch_start(trainer, module)
    report.on_test_batch_end(trainer, module, {"outputs": None, "targets": None}, None, 0)
    report.on_test_epoch_end(trainer, module)
    assert logged["test/pitch/recall_macro"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert logged["test/pitch/precision_macro"] == pytest.approx((1 + 2 / 3 + 1) / 3)
    saved = json.loads((tmp_path / "classification_report.json").read_text())["pitch"]
    assert [saved["per_class"][c]["support"] for c in "0123"] == [2, 2, 2, 0]
    assert saved["macro"]["classes"] == 3 and saved["macro"]["support"] == 6
    text = (tmp_path / "classification_report.txt").read_text()
    assert "support" in text.splitlines()[1]
    assert "the mean over the 3 of 10 classes that the test split has" in text
