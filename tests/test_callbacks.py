"""Each callback config, on a tiny run, produces the files or values it promises."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import open_dict
from PIL import Image

from src.callbacks import confusion_matrix, sample_grid
from src.callbacks.confusion_matrix import ConfusionMatrix
from src.train import train
from src.utils.figures import log_figure
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


def test_confusion_matrix_and_sample_grid(tmp_path: Path, monkeypatch) -> None:
    titles: dict[str, list[str]] = {}
    colours: dict[str, set[str]] = {}

    origins: dict[str, set[str]] = {}

    def keep_titles(trainer, name, figure):
        titles[name] = [figure.get_suptitle(), *(ax.get_title() for ax in figure.axes)]
        origins[name] = {image.origin for ax in figure.axes for image in ax.images}
        titles[name].append(" ".join(ax.get_ylabel() for ax in figure.axes))  # the colour bar's
        colours[name] = {t.get_color() for t in figure.axes[0].texts}
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
    figures = tmp_path / "figures"
    for name in ("confusion_matrix_val", "confusion_matrix_test", "samples_test"):
        with Image.open(figures / f"{name}.png") as image:
            assert image.size[0] > 200 and image.size[1] > 100
    # the images went to TensorBoard too (an event file with more than scalars)
    events = sorted((tmp_path / "tensorboard").rglob("events.out.tfevents.*"))
    assert any(b"confusion_matrix_test" in e.read_bytes() for e in events)
    assert float(run["metrics"]["test/acc"]) > 0.8


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


def test_sample_grid_draws_spectrograms_low_frequencies_down(tmp_path: Path, monkeypatch) -> None:
    """VIMH inputs are spectrograms whose row 0 is the lowest frequency: drawn as a picture
    (row 0 at the top) they stood upside down."""
    origins: list[set[str]] = []

    def keep_origin(trainer, name, figure):
        origins.append({image.origin for ax in figure.axes for image in ax.images})
        return log_figure(trainer, name, figure)

    monkeypatch.setattr(sample_grid, "log_figure", keep_origin)
    cfg = compose_config(
        "train.yaml",
        ["experiment=vimh_cnn", "trainer.max_epochs=1", "callbacks=[default,sample_grid]",
         "logger=none", *vimh_overrides(tmp_path, 200)],
        tmp_path,
    )  # fmt: skip
    train(cfg)
    assert origins == [{"lower"}]
    assert (tmp_path / "figures" / "samples_test.png").is_file()


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
