"""Every config file of every group composes and instantiates into working objects."""

from __future__ import annotations

import inspect
import logging
import re
import shutil
from pathlib import Path

import hydra
import pytest
import torch
from lightning import Callback, Trainer
from lightning.pytorch.loggers import Logger
from omegaconf import OmegaConf

from src.lora.runs import without_lora
from src.utils.errors import UserInputError
from src.utils.instantiators import instantiate_callbacks, instantiate_loggers, instantiate_model
from tests.conftest import CONFIGS, compose_config


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONFIGS) / group).glob("*.yaml"))


def test_train_and_eval_configs_have_the_lht_keys(tmp_path: Path) -> None:
    cfg = compose_config("train.yaml", [], tmp_path)
    for key in ("data", "model", "callbacks", "logger", "trainer", "paths", "extras"):
        assert key in cfg, key
    for key in ("task_name", "tags", "train", "test", "ckpt_path", "seed", "optimized_metric"):
        assert key in cfg, key
    assert cfg.logger.csv._target_.endswith("CSVLogger")
    assert cfg.optimized_metric == "val/acc_best"
    eval_cfg = compose_config("eval.yaml", ["ckpt_path=x.ckpt"], tmp_path)
    assert eval_cfg.ckpt_path == "x.ckpt" and "run_dir" in eval_cfg


@pytest.fixture(scope="session")
def data_dirs(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Where each data config finds small data: MNIST files, a table, a VIMH parent dir, a
    split folder of 16x16 digit PNGs (three classes) and one of synth notes (four classes,
    10 WAV files each)."""
    from src.data.components.folder_splits import AUDIO_EXTENSIONS, make_splits
    from src.tools.example_folders import write_digit_images, write_synth_notes

    table = tmp_path_factory.mktemp("table") / "rows.csv"
    x = torch.randn(300, 3, generator=torch.Generator().manual_seed(0))
    y = 2 * x[:, 0] - x[:, 1] + 0.1 * x[:, 2]
    lines = ["a,b,c,y"] + [
        ",".join(f"{v:.5f}" for v in (*row, t))
        for row, t in zip(x.tolist(), y.tolist(), strict=True)
    ]
    table.write_text("\n".join(lines) + "\n")
    images = tmp_path_factory.mktemp("images")
    write_digit_images(images, size=16, channels=3, per_class=10)
    for other in range(3, 10):
        shutil.rmtree(images / "raw" / str(other))
    make_splits(images)
    notes = tmp_path_factory.mktemp("notes")
    write_synth_notes(notes, per_class=10)
    make_splits(notes, extensions=AUDIO_EXTENSIONS)
    return {
        "mnist": mnist_dir,
        "table": table,
        "vimh": tmp_path_factory.mktemp("vimh"),
        "images": images,
        "notes": notes,
    }


def data_overrides(data_target: str, dirs: dict[str, Path]) -> list[str]:
    """Overrides that point a data config (by its data module class) at the small data."""
    if data_target.endswith("VIMHDataModule"):  # generated once per test process, then reused
        return [f"paths.data_dir={dirs['vimh']}", "data.generate=true"]
    if data_target.endswith("TabularDataModule"):
        return [f"data.path={dirs['table']}", "data.target_columns=[y]"]
    if data_target.endswith("ImageFolderDataModule"):
        return [f"data.root={dirs['images']}", "data.image_size=16", "data.num_workers=0"]
    if data_target.endswith("AudioFolderDataModule"):
        return [f"data.root={dirs['notes']}", "data.num_workers=0"]
    return [f"paths.data_dir={dirs['mnist']}"]


def data_target(group_option: str) -> str:
    """The data module class of a data option (its own ``_target_``, or that of the
    option it builds on)."""
    node = OmegaConf.load(Path(CONFIGS) / "data" / f"{group_option}.yaml")
    if "_target_" in node:
        return node["_target_"]
    (base,) = [d for d in node.defaults if isinstance(d, str) and d != "_self_"]
    return data_target(base)


# model configs that need other data than the default (digits) to make sense
MODEL_DATA: dict[str, str] = {
    **{m: "vimh" for m in options("model") if m.startswith("vimh_")},
    "regression_mlp": "diabetes",
    "cnn1d": "signals",
}


def check_one_training_step(module: torch.nn.Module, datamodule) -> None:
    """A real batch through model_step: a finite loss whose gradients reach the net."""
    datamodule.prepare_data()
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    module.train()
    loss, _, _ = module.model_step(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in module.net.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("model", options("model"))
def test_every_model_config(model: str, tmp_path: Path, data_dirs: dict[str, Path]) -> None:
    data = MODEL_DATA.get(model, "digits")
    overrides = [f"model={model}", f"data={data}", *data_overrides(data_target(data), data_dirs)]
    cfg = compose_config("train.yaml", overrides, tmp_path)
    dm = hydra.utils.instantiate(cfg.data)
    check_one_training_step(instantiate_model(cfg.model, dm), dm)


@pytest.mark.parametrize(
    "choice",
    [f"optimizer={o}" for o in options("model/optimizer")]
    + [f"scheduler={s}" for s in options("model/scheduler")],
)
def test_every_optimizer_and_scheduler_config(choice: str, tmp_path: Path) -> None:
    # a two-step fit: per-step schedules take their length from the trainer
    cfg = compose_config("train.yaml", [f"model/{choice}"], tmp_path)
    dm = hydra.utils.instantiate(cfg.data)
    module = instantiate_model(cfg.model, dm)
    trainer = Trainer(
        max_steps=2,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=dm)
    (optimizer,) = trainer.optimizers
    assert isinstance(optimizer, torch.optim.Optimizer) and trainer.global_step == 2
    if choice.startswith("scheduler"):
        (scheduler,) = trainer.lr_scheduler_configs
        assert scheduler.scheduler.optimizer is optimizer


@pytest.mark.parametrize("callbacks", options("callbacks"))
def test_every_callbacks_config(callbacks: str, tmp_path: Path) -> None:
    cfg = compose_config("train.yaml", [f"callbacks={callbacks}"], tmp_path, quiet=False)
    made = instantiate_callbacks(cfg.callbacks)
    assert all(isinstance(c, Callback) for c in made)
    assert len(made) == {"default": 6, "none": 0}.get(callbacks, 1)


def test_no_callbacks_or_loggers_is_said_not_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """callbacks: null (the debug configs, the finders) and logger=none are asked for:
    "No callbacks configs found! Skipping..." was a WARNING nobody could act on."""
    cfg = compose_config("train.yaml", ["debug=fdr", "logger=none"], tmp_path)
    with caplog.at_level(logging.INFO):
        assert instantiate_callbacks(cfg.callbacks) == []
        assert instantiate_loggers(cfg.logger) == []
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in said] == [logging.INFO, logging.INFO], said
    assert said[0][1].startswith("No callbacks configured (callbacks: null): Lightning's")
    assert said[1][1].startswith("No loggers configured (logger: null)")


def optional_logger_available(option: str) -> bool:
    """Whether an LHT logger option whose package we do not install can be built here."""
    import importlib.util

    from src.utils.optional_loggers import IMPORT_NAMES, OPTIONAL

    if option == "neptune":
        return False
    if option not in OPTIONAL:
        return True
    return importlib.util.find_spec(IMPORT_NAMES[OPTIONAL[option][2]]) is not None


@pytest.mark.parametrize("logger", options("logger"))
def test_every_logger_config(logger: str, tmp_path: Path) -> None:
    cfg = compose_config("train.yaml", [f"logger={logger}"], tmp_path)
    if not optional_logger_available(logger):  # aim, comet, neptune: one clear message
        # Hydra wraps it; the command line prints the UserInputError alone (exit_on_user_error)
        with pytest.raises(hydra.errors.InstantiationException) as raised:
            instantiate_loggers(cfg.logger)
        assert isinstance(raised.value.__cause__, UserInputError)
        assert re.search(r"uv add|has shut down", str(raised.value.__cause__))
        return
    made = instantiate_loggers(cfg.logger)
    assert all(isinstance(lg, Logger) for lg in made)
    assert len(made) == {"none": 0, "many_loggers": 3}.get(logger, 1)


HARDWARE = {"gpu": "gpu", "rocm": "gpu", "mps": "mps", "ddp": "gpu"}


@pytest.mark.parametrize("trainer", options("trainer"))
def test_every_trainer_config(trainer: str, tmp_path: Path) -> None:
    cfg = compose_config("train.yaml", [f"trainer={trainer}"], tmp_path)
    if trainer in HARDWARE:
        # no such device here: check the config against Trainer's signature instead
        assert cfg.trainer.accelerator == HARDWARE[trainer]
        accepted = inspect.signature(Trainer.__init__).parameters
        unknown = [k for k in cfg.trainer if k != "_target_" and k not in accepted]
        assert not unknown, f"trainer/{trainer}.yaml has keys Trainer does not take: {unknown}"
        return
    made = hydra.utils.instantiate(cfg.trainer)
    assert isinstance(made, Trainer)
    if trainer == "ddp_sim":
        from src.utils.ddp_launcher import JobScopedDDPStrategy

        assert made.num_devices == 2 and isinstance(made.strategy, JobScopedDDPStrategy)


@pytest.mark.parametrize("debug", options("debug"))
def test_every_debug_config(debug: str, tmp_path: Path) -> None:
    cfg = compose_config("train.yaml", [f"debug={debug}"], tmp_path)
    # no logger: logger=none's empty group choice (a logger=csv given as well is kept)
    assert cfg.task_name == "debug" and cfg.callbacks is None and not cfg.logger
    assert isinstance(hydra.utils.instantiate(cfg.trainer), Trainer)


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_config(
    experiment: str, tmp_path: Path, data_dirs: dict[str, Path]
) -> None:
    composed = compose_config("train.yaml", [f"experiment={experiment}"], tmp_path)
    overrides = data_overrides(composed.data._target_, data_dirs)
    cfg = compose_config("train.yaml", [f"experiment={experiment}", *overrides], tmp_path)
    assert cfg.tags and cfg.seed is not None
    if cfg.data._target_.endswith("MNISTDataModule"):
        cfg.data.train_val_test_split = [1000, 200, 300]  # the small test files
    dm = hydra.utils.instantiate(cfg.data)
    if "lora" in cfg.model:  # fine-tunes a base: the plain net's initial weights stand in
        base = tmp_path / "base.pt"
        torch.save(instantiate_model(without_lora(cfg).model, dm).net.state_dict(), base)
        cfg.model.lora.base_ckpt = str(base)
    check_one_training_step(instantiate_model(cfg.model, dm), dm)
    assert isinstance(instantiate_callbacks(cfg.callbacks)[0], Callback)
    assert isinstance(hydra.utils.instantiate(cfg.trainer), Trainer)


@pytest.mark.parametrize("search", options("hparams_search"))
def test_every_hparams_search_config(search: str, tmp_path: Path) -> None:
    from hydra_plugins.optuna_study_sweeper._space import space_of

    # each search config pins the experiment it searches
    cfg = compose_config("train.yaml", [f"hparams_search={search}"], tmp_path)
    sweeper = cfg.hydra.sweeper
    assert cfg.hydra.runtime.choices.experiment is not None
    assert sweeper._target_.endswith("OptunaStudySweeper") and sweeper.study_name == search
    hydra.utils.get_class(sweeper._target_)  # the plugin is found
    metrics, directions = cfg.optimized_metric, sweeper.direction
    if isinstance(metrics, str):
        assert directions in ("maximize", "minimize")
    else:  # several objectives: one direction each
        assert len(metrics) == len(directions) >= 2
    overrides = [f"{key}={value}" for key, value in sweeper.params.items()]
    distributions, fixed = space_of(overrides)  # the sweeper's own reading of the space
    assert not fixed and len(distributions) == len(sweeper.params) >= 3
    for key, distribution in distributions.items():
        if "/" in key:  # a config group: each choice is one of its options
            assert key in cfg.hydra.runtime.choices, f"{search} searches unknown group {key}"
            assert set(distribution.choices) <= set(options(key)), (search, key)
        else:  # every searched key exists in the composed config
            assert OmegaConf.select(cfg, key) is not None, f"{search} searches unknown key {key}"


def test_default_paths_join_without_a_double_slash() -> None:
    """paths.log_dir and paths.data_dir are joined as ``${paths.log_dir}/mlflow``: the
    printed config tree and MLflow's stored artifact location read ``logs/mlflow``, not
    ``logs//mlflow``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose(
            "train.yaml", ["logger=mlflow", "hparams_search=digits_optuna"],
            return_hydra_config=True,
        )  # fmt: skip
    joined = {
        "hydra.run.dir": cfg.hydra.run.dir,
        "hydra.sweep.dir": cfg.hydra.sweep.dir,
        "optuna storage": cfg.hydra.sweeper.storage.removeprefix("sqlite:///"),
        "paths.log_dir": cfg.paths.log_dir,
        "paths.data_dir": cfg.paths.data_dir,
        "tracking_uri": cfg.logger.mlflow.tracking_uri.removeprefix("sqlite:///"),
        "artifact_location": cfg.logger.mlflow.artifact_location,
        "data.data_dir": cfg.data.data_dir,
    }
    for key, value in joined.items():
        assert "//" not in value, f"{key}: {value}"
    assert cfg.logger.mlflow.artifact_location.endswith("/logs/mlflow/artifacts")
