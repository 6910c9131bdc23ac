"""Training runs: fast_dev_run, validation twice an epoch, what is learned, resuming."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from src.train import train
from tests.conftest import compose_config


def test_fast_dev_run_cpu(tmp_path: Path) -> None:
    cfg = compose_config("train.yaml", ["debug=fdr", "trainer=cpu"], tmp_path)
    metrics, objects = train(cfg)
    assert objects["trainer"].global_step == 1
    assert {"train/loss", "val/acc", "test/acc"} <= set(metrics)


def test_validation_twice_per_epoch(tmp_path: Path) -> None:
    cfg = compose_config(
        "train.yaml", ["trainer.max_epochs=1", "+trainer.val_check_interval=0.5"], tmp_path
    )
    metrics, _ = train(cfg)
    lines = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    val_rows = [r for r in lines[1:] if r.split(",")[header.index("val/acc")]]
    assert len(val_rows) == 2  # two validations, no sanity check counted
    assert float(metrics["test/acc"]) > 0.5  # even half an epoch learns something


def sklearn_svc_baseline() -> float:
    """scikit-learn's SVC on the template's own digits split (for reference)."""
    from sklearn.svm import SVC

    from src.data.digits_datamodule import DigitsDataModule

    dm = DigitsDataModule()
    dm.setup()
    (xtr, ytr), (xte, yte) = dm.splits["train"], dm.splits["test"]
    svc = SVC().fit(xtr.flatten(1).numpy(), ytr.numpy())
    return float(svc.score(xte.flatten(1).numpy(), yte.numpy()))


def test_default_experiment_learns_digits(tmp_path: Path) -> None:
    """`make train` (digits, MLP, defaults) reaches at least 0.97 test accuracy."""
    cfg = compose_config("train.yaml", [], tmp_path)
    metrics, objects = train(cfg)
    acc = float(metrics["test/acc"])
    print(f"default MLP test/acc={acc:.4f}, sklearn SVC baseline={sklearn_svc_baseline():.4f}")
    assert acc >= 0.97
    # the best checkpoint, not the last weights, was tested: it holds the best val/acc
    best = Path(objects["trainer"].checkpoint_callback.best_model_path)
    assert best.name.startswith("epoch_") and (tmp_path / "checkpoints" / "last.ckpt").is_file()
    saved = torch.load(best, weights_only=True)  # no pickled modules or partials
    assert float(saved["state_dict"]["val_best.max_value"]) == pytest.approx(
        float(metrics["val/acc_best"])
    )


def test_digits_cnn_approaches_svc(tmp_path: Path) -> None:
    cfg = compose_config("train.yaml", ["experiment=digits_cnn"], tmp_path)
    metrics, _ = train(cfg)
    acc, svc = float(metrics["test/acc"]), sklearn_svc_baseline()
    print(f"digits_cnn test/acc={acc:.4f}, sklearn SVC baseline={svc:.4f}")
    assert acc >= svc - 0.015


def test_val_acc_best_ignores_the_sanity_check(tmp_path: Path) -> None:
    """An untrained model's sanity-check accuracy must not become val/acc_best."""
    cfg = compose_config(
        "train.yaml",
        ["trainer.max_epochs=1", "+trainer.limit_train_batches=1", "model.optimizer.lr=0.0"],
        tmp_path,
    )
    with open_dict(cfg):
        cfg.trainer.num_sanity_val_steps = -1  # the full validation set, as epoch 0 sees it
    metrics, objects = train(cfg)
    module = objects["model"]
    # lr=0: the weights never change, so the sanity check and epoch 0 see the same
    # model; the best must equal that one epoch's value, not a max over two passes
    assert float(metrics["val/acc_best"]) == pytest.approx(float(metrics["val/acc"]))
    assert module.val_best.update_count == 1


def _run(tmp_path: Path, name: str, *overrides: str) -> tuple[dict[str, float], list[str]]:
    run_dir = tmp_path / name
    cfg = compose_config(
        "train.yaml",
        [
            "experiment=digits_cnn",  # dropout: uses the random generators while training
            "trainer.deterministic=true",
            "test=false",
            "seed=7",
            *overrides,
        ],
        run_dir,
    )
    metrics, _ = train(cfg)
    rows = (run_dir / "csv" / "version_0" / "metrics.csv").read_text().splitlines()
    epochs_trained = sorted({r.split(",")[rows[0].split(",").index("epoch")] for r in rows[1:]})
    return {k: float(v) for k, v in metrics.items() if k.startswith("val/")}, epochs_trained


def test_resume_continues_exactly(tmp_path: Path) -> None:
    """2 epochs in one go == 1 epoch, then resumed from last.ckpt for 1 more."""
    straight, epochs = _run(tmp_path, "straight", "trainer.max_epochs=2")
    assert epochs == ["0", "1"]
    _run(tmp_path, "first", "trainer.max_epochs=1")
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert "rng_states" in torch.load(last, weights_only=True)
    resumed, epochs = _run(tmp_path, "resumed", "trainer.max_epochs=2", f"ckpt_path={last}")
    assert epochs == ["1"]  # it continued: only the second epoch ran
    assert set(resumed) == set(straight)
    for key, value in straight.items():
        assert resumed[key] == pytest.approx(value, abs=1e-6), key


def test_a_misspelt_optimized_metric_stops_after_the_first_validated_epoch(
    tmp_path: Path,
) -> None:
    from src.utils.errors import MetricNotLoggedError
    from src.utils.run_status import read_status

    cfg = compose_config(
        "train.yaml", ["trainer.max_epochs=5", "optimized_metric=val/acc_bets"], tmp_path
    )
    with pytest.raises(MetricNotLoggedError, match=r"\['val/acc_bets'\].*in epoch 0"):
        train(cfg)
    status = read_status(tmp_path)
    assert status["status"] == "failed" and "val/acc_bets" in status["error"]
    lines = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text().splitlines()
    epochs = {row.split(",")[lines[0].split(",").index("epoch")] for row in lines[1:]}
    assert epochs == {"0"}  # four of the five epochs were not trained


def test_train_and_test_metrics_pass_the_early_optimized_metric_check(tmp_path: Path) -> None:
    # train/acc is logged after validation (the module's on_train_epoch_end), test/acc after fit
    cfg = compose_config(
        "train.yaml",
        ["trainer.max_epochs=2", "optimized_metric=[train/acc,test/acc,model/params/total]"],
        tmp_path,
    )
    metrics, objects = train(cfg)
    assert objects["trainer"].current_epoch == 2 and "test/acc" in metrics


def test_train_false_tests_the_checkpoint_given(tmp_path: Path) -> None:
    """``train=false ckpt_path=<ckpt>`` (train.yaml: "only test") tests that checkpoint's
    weights: it tested a freshly initialised model (test/acc near 0.1). It writes no
    checkpoint: it linked the tested run's best one into its own checkpoints/."""
    cfg = compose_config("train.yaml", ["trainer.max_epochs=2"], tmp_path / "a")
    trained, objects = train(cfg)
    best = objects["trainer"].checkpoint_callback.best_model_path
    cfg = compose_config("train.yaml", ["train=false", f"ckpt_path={best}"], tmp_path / "b")
    tested, _ = train(cfg)
    assert float(trained["test/acc"]) > 0.9
    assert float(tested["test/acc"]) == pytest.approx(float(trained["test/acc"]))
    # nothing was trained here: the earlier run's best checkpoint was not linked into this
    # run's checkpoints/ (a resume's carry-over), as if this run had written it
    assert not list((tmp_path / "b").glob("checkpoints/*.ckpt"))
