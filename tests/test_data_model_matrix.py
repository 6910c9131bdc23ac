"""Every data option with every model option: the compatible pairs train an epoch, selecting
checkpoints by the model's own metric; the others stop with one clear message.

The metric that selects checkpoints is stated once, in the model config (``model.monitor``,
``model.mode``); the checkpoint and early-stopping callbacks and ``optimized_metric``
interpolate it. An epoch of one batch per split (not ``fast_dev_run``, which switches the
checkpoint and early-stopping callbacks off and would hide a metric they cannot find).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from src.train import train
from src.utils.errors import UserInputError, user_error_in
from src.utils.run_summary import get_metric_value
from tests.conftest import CONFIGS, compose_config, run_cli
from tests.test_configs import data_dirs, options  # noqa: F401  (data_dirs: a fixture)

# data=streaming serves the task of the module its shards came from: tests/data/test_streaming.py
DATA = [d for d in options("data") if d != "streaming"]
MODELS = options("model")

# what each data module holds: its task and the shape of one sample
DATA_KINDS: dict[str, tuple[str, str]] = {
    "DigitsDataModule": ("classification", "image"),
    "MNISTDataModule": ("classification", "image"),
    "ImageFolderDataModule": ("classification", "image"),
    # each file a spectrogram, in VIMH's (x, y, levels) layout with one head
    "AudioFolderDataModule": ("multihead", "image"),
    "DiabetesDataModule": ("regression", "row"),
    "TabularDataModule": ("regression", "row"),
    "SignalsDataModule": ("regression", "sequence"),
    "VIMHDataModule": ("multihead", "image"),
}
# the task each model module learns, and the sample shapes a net needs (absent: any)
MODEL_TASKS = {
    "ClassificationModule": "classification",
    "RegressionModule": "regression",
    "MultiheadModule": "multihead",
}
NET_INPUTS = {"ResidualCNN1D": {"sequence"}, "SimpleCNN": {"image"}, "TorchvisionNet": {"image"}}


def target_name(node) -> str:
    return str(node["_target_"]).rsplit(".", 1)[-1]


def composed(option: str, group: str) -> dict:
    """The option's config node as train.yaml composes it (defaults lists followed)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return compose(config_name="train.yaml", overrides=[f"{group}={option}"])[group]


DATA_NODES = {d: composed(d, "data") for d in DATA}
DATA_TARGETS = {d: target_name(node) for d, node in DATA_NODES.items()}
# the directory name a VIMH option generates (its settings are in the name)
VIMH_NAMES = {d: Path(str(n.get("data_dir", ""))).name for d, n in DATA_NODES.items()}
MODEL_TARGETS = {
    m: (target_name(n), target_name(n.net)) for m in MODELS for n in [composed(m, "model")]
}


def compatible(data: str, model: str) -> bool:
    """Unknown modules pair with nothing: the table test below names them."""
    if DATA_TARGETS[data] not in DATA_KINDS or MODEL_TARGETS[model][0] not in MODEL_TASKS:
        return False
    task, sample = DATA_KINDS[DATA_TARGETS[data]]
    module, net = MODEL_TARGETS[model]
    return MODEL_TASKS[module] == task and sample in NET_INPUTS.get(net, {sample})


KNOWN_DATA = [d for d in DATA if DATA_TARGETS[d] in DATA_KINDS]

# one pairing per kind of model and data in the fast suite; the rest are marked slow
FAST = {
    ("digits", "cnn"),
    ("diabetes", "regression_mlp"),
    ("tabular", "regression_mlp"),
    ("signals", "cnn1d"),
    ("vimh", "vimh_cnn_16k"),
    ("diabetes", "mlp"),
    ("digits", "regression_mlp"),
    ("tabular", "cnn1d"),
    ("mnist", "vimh_cnn_16k"),
    ("image_folder", "cnn"),
    ("audio_folder", "vimh_cnn_16k"),
    ("audio_folder", "cnn"),
}

ONE_BATCH_EPOCH = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=1",
    "+trainer.limit_val_batches=1",
    "+trainer.limit_test_batches=1",
    "logger=none",
]


def small_data(data: str, dirs: dict[str, Path]) -> list[str]:
    """Overrides that make each data option small (and findable offline), by its module."""
    target = DATA_TARGETS[data]
    if target == "VIMHDataModule":
        # each VIMH option (its synth) generates its own small set, once per test session
        return [
            f"paths.data_dir={dirs['vimh']}",
            "data.generate=true",
            "data.generation.size=200",
            f"data.data_dir={dirs['vimh'] / re.sub(r'_[0-9]+dss_', '_200dss_', VIMH_NAMES[data])}",
        ]
    if target == "ImageFolderDataModule":
        return [
            f"data.root={dirs['images']}",
            "data.image_size=16",
            "data.num_workers=0",
            "data.batch_size=8",
        ]
    if target == "AudioFolderDataModule":
        return [f"data.root={dirs['notes']}", "data.num_workers=0", "data.batch_size=8"]
    return {
        "DigitsDataModule": [],
        "DiabetesDataModule": [f"paths.data_dir={dirs['table'].parent}"],
        "MNISTDataModule": [
            f"paths.data_dir={dirs['mnist']}",
            "data.train_val_test_split=[1000,200,300]",
        ],
        "SignalsDataModule": ["data.num_samples=200"],
        "TabularDataModule": [f"data.path={dirs['table']}", "data.target_columns=[y]"],
    }[target]


@pytest.fixture(scope="module")
def dirs(data_dirs: dict[str, Path]) -> dict[str, Path]:  # noqa: F811
    """test_configs' small data (MNIST files, a table, VIMH, image and note folders)."""
    return data_dirs


def test_every_data_and_model_option_is_in_the_table() -> None:
    """A new data module, task module or net with input needs: add it to the tables above."""
    assert set(DATA_TARGETS.values()) <= set(DATA_KINDS), "add the data module to DATA_KINDS"
    assert {m for m, _ in MODEL_TARGETS.values()} <= set(MODEL_TASKS)
    for model in MODELS:  # each model fits some data
        assert any(compatible(data, model) for data in DATA), model


def pairing(data: str, model: str):
    marks = [] if (data, model) in FAST else [pytest.mark.slow]
    return pytest.param(data, model, marks=marks, id=f"{data}-{model}")


@pytest.mark.parametrize(
    ("data", "model"),
    [pairing(d, m) for d in DATA for m in MODELS if compatible(d, m)],
)
def test_compatible_pairing_trains_an_epoch(
    data: str,
    model: str,
    tmp_path: Path,
    dirs: dict[str, Path],
) -> None:
    overrides = [f"data={data}", f"model={model}", *small_data(data, dirs)]
    cfg = compose_config("train.yaml", [*overrides, *ONE_BATCH_EPOCH], tmp_path)
    monitor = cfg.model.monitor
    assert cfg.optimized_metric == f"{monitor}_best"
    metrics, objects = train(cfg)
    callbacks = objects["trainer"].callbacks
    checkpoint = next(c for c in callbacks if isinstance(c, ModelCheckpoint))
    stopping = next(c for c in callbacks if isinstance(c, EarlyStopping))
    assert checkpoint.monitor == stopping.monitor == monitor
    assert Path(checkpoint.best_model_path).is_file()  # chosen by the model's own metric
    assert monitor in metrics and f"{monitor}_best" in metrics
    assert get_metric_value(metrics, cfg.optimized_metric) == float(metrics[f"{monitor}_best"])
    assert monitor.replace("val/", "test/", 1) in metrics  # the best checkpoint was tested


@pytest.mark.parametrize(
    ("data", "model"),
    [pairing(d, m) for d in KNOWN_DATA for m in MODELS if not compatible(d, m)],
)
def test_incompatible_pairing_is_one_clear_message(
    data: str,
    model: str,
    tmp_path: Path,
    dirs: dict[str, Path],
) -> None:
    overrides = [f"data={data}", f"model={model}", *small_data(data, dirs)]
    cfg = compose_config("train.yaml", [*overrides, *ONE_BATCH_EPOCH], tmp_path)
    with pytest.raises(Exception) as caught:  # Hydra's instantiate may wrap it
        train(cfg)
    error = user_error_in(caught.value)  # what the entry points print alone, exit status 1
    assert error is not None, caught.value
    message = str(error)
    # it names what does not fit and what to do, before anything is trained
    assert "model=" in message and ("data" in message or "data=" in message)
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.slow  # a process of its own: about 20 s
def test_incompatible_pairing_on_the_command_line(tmp_path: Path) -> None:
    result = run_cli("train.py", "data=diabetes", "model=mlp", f"paths.log_dir={tmp_path}")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "DiabetesDataModule" in result.stderr and "go together" in result.stderr


def test_the_monitor_of_the_model_config_drives_selection(tmp_path: Path) -> None:
    overrides = ["model.monitor=val/loss", "model.mode=min", *ONE_BATCH_EPOCH]
    cfg = compose_config("train.yaml", overrides, tmp_path)
    assert cfg.callbacks.model_checkpoint.mode == cfg.callbacks.early_stopping.mode == "min"
    metrics, objects = train(cfg)
    assert objects["trainer"].checkpoint_callback.monitor == "val/loss"
    assert float(metrics["val/loss_best"]) == pytest.approx(float(metrics["val/loss"]))
    assert cfg.optimized_metric == "val/loss_best"


def test_a_monitor_the_model_does_not_log_stops_before_training(tmp_path: Path) -> None:
    cfg = compose_config("train.yaml", ["model.monitor=val/f1", *ONE_BATCH_EPOCH], tmp_path)
    with pytest.raises(UserInputError, match=r"model.monitor=val/f1 .*val/acc"):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists()
