"""A diverging run stops at the first non-finite loss with status 'diverged', keeps the
last finite checkpoint, and writes only valid JSON."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from src.callbacks.divergence import DivergedError, StopOnDivergence
from src.train import train
from src.utils.errors import UserInputError
from tests.conftest import compose_config

# Adam with lr=1e30: the weights explode within the first epoch's steps
EXPLODE = ["logger=none", "test=false", "+trainer.limit_train_batches=10", "seed=1"]


def _strict(path: Path) -> dict:
    return json.loads(path.read_text(), parse_constant=lambda token: pytest.fail(token))


def test_divergence_stops_the_run(tmp_path: Path) -> None:
    """Checked at every step (the CPU's default) or 4 steps at a time (as on a GPU, 50):
    the same first non-finite step, and no checkpoint trained past it."""
    stops = []
    for every in ("null", "4"):
        run_dir = tmp_path / every
        cfg = compose_config(
            "train.yaml",
            [*EXPLODE, "trainer.max_epochs=3", "model.optimizer.lr=1e30",
             f"callbacks.stop_on_divergence.check_every_n_steps={every}"],
            run_dir,
        )  # fmt: skip
        with pytest.raises(DivergedError) as caught:
            train(cfg)
        status = _strict(run_dir / "run_status.json")
        assert status["status"] == "diverged"
        assert (status["epoch"], status["step"]) == (caught.value.epoch, caught.value.step)
        assert status["step"] < 30  # stopped at once, not after three epochs of NaN
        for checkpoint in (run_dir / "checkpoints").glob("*.ckpt"):  # only finite weights
            weights = torch.load(checkpoint, weights_only=True)["state_dict"]
            assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
        stops.append((status["epoch"], status["step"]))
    assert stops[0] == stops[1]


def _batch_ends(callback: StopOnDivergence, losses: list[float]) -> int:
    """Feed ``losses`` as training steps 0, 1, ...; the number of batch ends it took."""
    module = SimpleNamespace(device=torch.device("cpu"))
    for step, loss in enumerate(losses):
        trainer = SimpleNamespace(global_step=step + 1, current_epoch=0)  # after the step
        callback.on_train_batch_end(trainer, module, torch.tensor(loss), None, step)
    return len(losses)


def test_grouped_checks_name_the_first_bad_step_and_guard_checkpoints() -> None:
    nan, inf = float("nan"), float("inf")
    callback = StopOnDivergence(check_every_n_steps=4)
    _batch_ends(callback, [1.0, 2.0, nan])  # not read yet
    with pytest.raises(DivergedError) as caught:
        _batch_ends(callback, [inf])  # the fourth step: all four read, the first bad named
    assert (caught.value.step, str(caught.value.value)) == (2, "nan")

    callback = StopOnDivergence(check_every_n_steps=50)
    _batch_ends(callback, [1.0, inf, 3.0])
    with pytest.raises(DivergedError) as caught:  # a checkpoint reads first, and is not saved
        callback.on_save_checkpoint(None, None, {})
    assert caught.value.step == 1
    for hook in ("on_validation_start", "on_train_epoch_end", "on_train_end"):
        callback = StopOnDivergence(check_every_n_steps=50)
        _batch_ends(callback, [nan])
        with pytest.raises(DivergedError):
            getattr(callback, hook)(None, None)

    callback = StopOnDivergence(check_every_n_steps=2, keep_going=True)
    _batch_ends(callback, [1.0, nan, nan, nan])  # warns once, then reads nothing
    assert callback._warned and callback._pending == []


def test_read_interval_follows_the_device_of_each_fit() -> None:
    """The interval is worked out at a fit's first step (its module on its device) and kept
    for that fit only: the same callback in a later fit on an accelerator groups its reads."""
    callback = StopOnDivergence()
    _batch_ends(callback, [1.0, 2.0])  # the CPU: every step read as it ends
    assert callback._every == 1 and callback._pending == []
    callback.on_fit_start(None, None)
    gpu_module = SimpleNamespace(device=torch.device("cuda"))
    trainer = SimpleNamespace(global_step=1, current_epoch=0)
    callback.on_train_batch_end(trainer, gpu_module, torch.tensor(float("nan")), None, 0)
    assert callback._every == StopOnDivergence.ACCELERATOR_STEPS and len(callback._pending) == 1
    with pytest.raises(DivergedError):
        callback.on_train_end(None, None)


def test_check_every_n_steps_must_be_a_whole_number() -> None:
    for bad in (0, -1, 2.5, "4", True):
        with pytest.raises(UserInputError, match="check_every_n_steps"):
            StopOnDivergence(check_every_n_steps=bad)


def test_keep_going_finishes_with_valid_json(tmp_path: Path) -> None:
    cfg = compose_config(
        "train.yaml",
        [
            *EXPLODE,
            "trainer.max_epochs=1",
            "model.optimizer.lr=1e30",
            "callbacks.stop_on_divergence.keep_going=true",
            "callbacks.early_stopping=null",  # it stops a NaN val metric by itself
        ],
        tmp_path,
    )
    train(cfg)
    status = _strict(tmp_path / "run_status.json")  # no NaN / Infinity tokens
    assert status["status"] == "finished"
    assert status["metrics"]["train/loss"] is None  # NaN written as null


def test_the_error_names_the_last_checkpoint_only_where_one_was_written(tmp_path: Path) -> None:
    """It said "the last finite weights are in checkpoints/last.ckpt" also for a run that
    diverged in its first epoch, before any checkpoint (no checkpoints/ directory at all)."""
    module = SimpleNamespace(device=torch.device("cpu"))
    trainer = SimpleNamespace(global_step=1, current_epoch=0, checkpoint_callbacks=[])
    callback = StopOnDivergence()
    callback.on_fit_start(trainer, module)
    with pytest.raises(DivergedError) as caught:
        callback.on_train_batch_end(trainer, module, torch.tensor(float("nan")), None, 0)
    assert "no checkpoint was written before it" in str(caught.value)
    assert "last.ckpt" not in str(caught.value)

    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir()
    last.write_bytes(b"finite")
    trainer.checkpoint_callbacks = [SimpleNamespace(last_model_path=str(last))]
    with pytest.raises(DivergedError) as caught:
        callback.on_train_batch_end(trainer, module, torch.tensor(float("inf")), None, 0)
    assert f"the last finite weights are in {last} " in str(caught.value)
    assert (caught.value.epoch, caught.value.step) == (0, 0)
