"""Per-step LR schedules, gradient accumulation and clipping, EMA and SWA weight averaging."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from src.models.components.schedulers import linear_warmup_factor, warmup_cosine_factor
from src.train import train
from src.utils.checkpoints import AVERAGE_CHECKPOINT, best_checkpoint
from src.utils.instantiators import instantiate_run
from tests.conftest import compose_config

LR = 0.01


class Recorder(Callback):
    """The LR of every optimizer step, the parameter change it made, and the net's
    weights after every step and at every epoch's end."""

    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.update_norms: list[float] = []
        self.step_weights: list[list[torch.Tensor]] = []
        self.epoch_weights: list[list[torch.Tensor]] = []

    @staticmethod
    def weights(pl_module: L.LightningModule) -> list[torch.Tensor]:
        return [p.detach().clone() for p in pl_module.net.parameters()]

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.lrs.append(optimizer.param_groups[0]["lr"])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._before, self._steps = self.weights(pl_module), trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self._steps:
            return  # a batch whose gradients are accumulated for the next step
        after = self.weights(pl_module)
        change = torch.cat([(a - b).flatten() for a, b in zip(after, self._before, strict=True)])
        self.update_norms.append(float(change.norm()))
        self.step_weights.append(after)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epoch_weights.append(self.weights(pl_module))


def fit(
    tmp_path: Path, *overrides: str, callbacks: str = "none"
) -> tuple[Recorder, L.Trainer, L.LightningModule]:
    cfg = compose_config(
        "train.yaml",
        ["logger=none", f"callbacks={callbacks}", f"model.optimizer.lr={LR}", *overrides],
        tmp_path,
    )
    L.seed_everything(0)
    objects = instantiate_run(cfg)
    recorder = Recorder()
    objects["trainer"].callbacks.append(recorder)
    objects["trainer"].fit(objects["model"], datamodule=objects["datamodule"])
    return recorder, objects["trainer"], objects["model"]


@pytest.mark.parametrize("schedule", ["warmup_cosine", "linear_warmup", "onecycle"])
def test_lr_follows_the_schedule_every_optimizer_step(tmp_path: Path, schedule: str) -> None:
    """2 epochs of 34 batches, 2 batches per optimizer step: 34 steps, each at its LR."""
    overrides = [f"model/scheduler={schedule}", "trainer.max_epochs=2"]
    overrides += ["trainer.accumulate_grad_batches=2", "+trainer.limit_val_batches=1"]
    if schedule != "onecycle":
        overrides += ["model.scheduler.warmup_steps=8"]
    if schedule == "linear_warmup":
        overrides += ["model.scheduler.final_lr_ratio=0.1"]
    recorder, trainer, _ = fit(tmp_path, *overrides)
    total = trainer.estimated_stepping_batches
    assert total == trainer.global_step == len(recorder.lrs) == 2 * math.ceil(34 / 2)
    if schedule == "warmup_cosine":
        expected = [LR * warmup_cosine_factor(s, total, 8, 0.0, 0.0) for s in range(total)]
        assert recorder.lrs[8] == pytest.approx(LR)  # the peak right after warmup
    elif schedule == "linear_warmup":
        expected = [LR * linear_warmup_factor(s, total, 8, 0.1, 0.0) for s in range(total)]
        assert recorder.lrs[4] == pytest.approx(LR / 2)
    else:  # torch's OneCycleLR on a bare optimizer over the same number of steps
        bare = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=LR)
        reference = torch.optim.lr_scheduler.OneCycleLR(bare, max_lr=LR, total_steps=total)
        expected = []
        for _ in range(total):
            expected.append(bare.param_groups[0]["lr"])
            bare.step()
            reference.step()
        assert recorder.lrs[0] == pytest.approx(LR / 25)
    assert recorder.lrs == pytest.approx(expected, rel=1e-6, abs=1e-12)
    assert max(recorder.lrs) == pytest.approx(LR, rel=0.02)
    assert recorder.lrs[0] < LR / 20  # it warms up: no epoch-level schedule does that


def test_gradient_clipping_bounds_every_update(tmp_path: Path) -> None:
    """Plain SGD with LR 1: each update is the clipped gradient itself."""
    sgd = ["model/optimizer=sgd", "model.optimizer.momentum=0.0", "model.optimizer.nesterov=false"]
    sgd += ["model.scheduler=null", "trainer.max_epochs=1", "+trainer.limit_train_batches=10"]
    sgd += ["+trainer.limit_val_batches=1"]
    free, _, _ = fit(tmp_path / "free", *sgd, "model.optimizer.lr=1.0")
    clipped, _, _ = fit(
        tmp_path / "clip", *sgd, "model.optimizer.lr=1.0", "trainer.gradient_clip_val=0.05"
    )
    assert min(free.update_norms) > 0.2  # unclipped gradients are larger than the bound
    assert max(clipped.update_norms) == pytest.approx(0.05, rel=1e-3)


def test_ema_callback_holds_the_moving_average(tmp_path: Path) -> None:
    """callbacks=ema: the final weights are the EMA of the weights after each step."""
    recorder, trainer, model = fit(
        tmp_path,
        "callbacks.ema.decay=0.9",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=20",
        "+trainer.limit_val_batches=1",
        callbacks="ema",
    )
    average = recorder.step_weights[0]
    for weights in recorder.step_weights[1:]:
        average = [0.9 * a + 0.1 * w for a, w in zip(average, weights, strict=True)]
    for got, want, last in zip(
        model.net.parameters(), average, recorder.step_weights[-1], strict=True
    ):
        torch.testing.assert_close(got.detach(), want, rtol=1e-4, atol=1e-6)
        assert not torch.allclose(got.detach(), last)  # not simply the last weights


def test_train_tests_the_average_the_ema_checkpoint_holds(tmp_path: Path) -> None:
    """callbacks=[default,ema]: train.py's test of the best checkpoint measures the average
    in its state_dict, the weights validation chose it by (Lightning's callback put the raw
    weights back: test/acc 0.97 where eval.py of the same run gave 0.11)."""
    cfg = compose_config(
        "train.yaml", ["callbacks=[default,ema]", "trainer.max_epochs=2", "logger=none"], tmp_path
    )
    metrics, objects = train(cfg)
    best = objects["trainer"].checkpoint_callback.best_model_path
    checkpoint = torch.load(best, weights_only=True)
    model, datamodule = objects["model"], objects["datamodule"]
    x, y = datamodule.splits["test"]

    def test_loss(state: dict) -> float:
        model.load_state_dict(state)
        with torch.no_grad():
            return float(torch.nn.functional.cross_entropy(model.eval()(x), y))

    average, raw = test_loss(checkpoint["state_dict"]), test_loss(checkpoint["current_model_state"])
    assert abs(average - raw) > 0.1  # 66 steps: half the average is still the initial weights
    assert float(metrics["test/loss"]) == pytest.approx(average, rel=1e-4)


@pytest.mark.slow
def test_the_ema_recipe_learns_digits(tmp_path: Path) -> None:
    """README's `python src/train.py callbacks=[default,ema]`: with Lightning's decay 0.999
    the 340 steps' average kept 71% of the random initial weights (test/acc 0.46)."""
    cfg = compose_config("train.yaml", ["callbacks=[default,ema]", "logger=none"], tmp_path)
    assert float(train(cfg)[0]["test/acc"]) > 0.95


SWA_RUN = [
    "callbacks=[default,swa]",
    "callbacks.swa.swa_epoch_start=2",
    "callbacks.swa.annealing_epochs=1",
    "trainer.max_epochs=4",
    "logger=none",
]


def loss_on_test_split(objects: dict, checkpoint: str | Path) -> float:
    """The test split's mean loss with the weights of ``checkpoint``."""
    model, (x, y) = objects["model"], objects["datamodule"].splits["test"][:2]
    model.load_state_dict(torch.load(checkpoint, weights_only=True)["state_dict"])
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(model.eval()(x), y))


def test_train_tests_the_swa_average_and_eval_picks_it(tmp_path: Path, caplog) -> None:
    """callbacks=[default,swa]: Lightning puts the average into the module after the last
    checkpoint, and train.py tested the best epoch (test metrics equal to a run without SWA).
    The average is saved as swa.ckpt, tested, and what eval.py run_dir= picks. The epoch SWA
    adds for BatchNorm is announced (Lightning then says max_epochs=5 reached), and saving
    the average says weights_only itself (Lightning logged that it defaulted)."""
    with caplog.at_level("INFO"):
        metrics, objects = train(compose_config("train.yaml", SWA_RUN, tmp_path))
    assert "SWA: one more epoch (index 4, past max_epochs=4) recomputes" in caplog.text
    assert "weights_only" not in caplog.text
    average = tmp_path / "checkpoints" / AVERAGE_CHECKPOINT
    best = objects["trainer"].checkpoint_callback.best_model_path
    assert average.is_file() and best_checkpoint(tmp_path) == average
    swa_loss, best_loss = loss_on_test_split(objects, average), loss_on_test_split(objects, best)
    assert abs(swa_loss - best_loss) > 1e-4  # the average is other weights
    assert float(metrics["test/loss"]) == pytest.approx(swa_loss, rel=1e-4)


def test_swa_stopped_early_tests_the_best_checkpoint(tmp_path: Path) -> None:
    """Early stopping before the last averaged epoch: no complete average, no swa.ckpt; the
    best checkpoint is tested, as without SWA."""
    stop = ["callbacks.early_stopping.patience=0", "callbacks.early_stopping.min_delta=1.0"]
    metrics, objects = train(compose_config("train.yaml", SWA_RUN + stop, tmp_path))
    assert objects["trainer"].current_epoch < 4  # stopped early
    assert not (tmp_path / "checkpoints" / AVERAGE_CHECKPOINT).exists()
    best = objects["trainer"].checkpoint_callback.best_model_path
    assert float(metrics["test/loss"]) == pytest.approx(loss_on_test_split(objects, best), rel=1e-4)


@pytest.mark.parametrize("batch_norm", [True, False])
def test_resuming_a_finished_swa_run_says_its_training_epochs(
    tmp_path: Path, batch_norm: bool
) -> None:
    """A finished 4-epoch SWA run resumed with trainer.max_epochs=4 has nothing left to
    train, and the message says 4 epochs: with BatchNorm, Lightning's extra pass that
    recomputes the average's statistics is a 5th epoch in the checkpoint's fit loop (the
    message said 'already trained 5 epochs'); without BatchNorm there is no such pass."""
    from src.utils.errors import UserInputError

    run = [*SWA_RUN, f"model.net.batch_norm={str(batch_norm).lower()}"]
    metrics, _ = train(compose_config("train.yaml", run, tmp_path / "first"))
    assert float(metrics["test/acc"]) > 0.5  # the average learned: ten classes
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=True)
    counted = saved["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"]
    assert counted == (5 if batch_norm else 4)  # the BatchNorm pass counts as an epoch
    again = tmp_path / "again"
    cfg = compose_config("train.yaml", [*run, f"ckpt_path={last}"], again)
    with pytest.raises(UserInputError) as refused:
        train(cfg)
    said = str(refused.value)
    assert "has already trained 4 epochs and trainer.max_epochs=4" in said, said
    assert "(trainer.max_epochs=14)" in said
    assert not (again / "checkpoints").exists()


def test_swa_callback_averages_the_epochs(tmp_path: Path) -> None:
    """callbacks=swa from the 2nd of 4 epochs (Lightning counts from 1): it averages the
    weights each epoch starts with from then on (the ends of epochs 0, 1 and 2)."""
    recorder, _, model = fit(
        tmp_path,
        "callbacks.swa.swa_epoch_start=2",
        "callbacks.swa.annealing_epochs=1",
        "model.scheduler=null",
        "trainer.max_epochs=4",
        "+trainer.limit_val_batches=1",
        callbacks="swa",
    )
    epochs = recorder.epoch_weights[0:3]
    mean = [sum(ws) / 3 for ws in zip(*epochs, strict=True)]
    for got, want in zip(model.net.parameters(), mean, strict=True):
        torch.testing.assert_close(got.detach(), want, rtol=1e-4, atol=1e-6)


def test_plateau_steps_on_the_epochs_that_validate(tmp_path: Path) -> None:
    """``trainer.check_val_every_n_epoch=2``: ReduceLROnPlateau steps after epochs 2, 4, 6,
    on their val/loss (Lightning stopped the run after epoch 1: no val/loss to watch)."""
    cfg = compose_config(
        "train.yaml",
        [
            "model/scheduler=plateau",
            "model.scheduler.patience=0",
            "+model.scheduler.threshold=10",  # no epoch counts as better: each step reduces
            "trainer.max_epochs=6",
            "trainer.check_val_every_n_epoch=2",
            "test=false",
        ],
        tmp_path,
    )
    _, objects = train(cfg)
    (config,) = objects["trainer"].lr_scheduler_configs
    assert config.scheduler.last_epoch == 3
    lr = objects["trainer"].optimizers[0].param_groups[0]["lr"]
    assert lr == pytest.approx(cfg.model.optimizer.lr * 0.1**3)
