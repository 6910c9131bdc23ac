"""A single run composes its config once (src/utils/compose_once.py), and the run gets
the very config Hydra's own second compose gives it, its ``hydra`` node included."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from src.utils.compose_once import composed_once
from tests.conftest import CONFIGS

COMPOSE = ConfigLoaderImpl._load_configuration_impl  # Hydra's own, before any test wraps it


@pytest.fixture(autouse=True)
def logging_as_it_was():
    """Hydra's run configures logging (a file handler in the run directory): undone."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:], root.level = handlers, level


def run_app(overrides: list[str], run_dir: Path, once: bool, monkeypatch) -> dict:
    """Run a ``@hydra.main`` app on train.yaml that records what its task is given, and
    how many times Hydra composed."""
    seen: dict = {"composes": 0, "jobs": []}

    def counted(self, *args, **kwargs):
        seen["composes"] += 1
        return COMPOSE(self, *args, **kwargs)

    def task(cfg) -> None:
        hydra_node = OmegaConf.to_container(HydraConfig.get())
        seen["jobs"].append((OmegaConf.to_yaml(cfg), hydra_node))

    monkeypatch.setattr(ConfigLoaderImpl, "_load_configuration_impl", counted)
    argv = ["train.py", *overrides, f"hydra.run.dir={run_dir}"]
    argv.append(f"hydra.sweep.dir={run_dir}")
    monkeypatch.setattr(sys, "argv", argv)
    app = hydra.main(version_base="1.3", config_path=str(CONFIGS), config_name="train.yaml")
    if once:
        with composed_once():
            app(task)()
    else:
        app(task)()
    return seen


@pytest.mark.parametrize(
    "overrides",
    [
        [],  # no mode in the config: Hydra adds hydra.mode=RUN before it composes again
        ["hydra.mode=RUN", "trainer.max_epochs=2"],  # the mode given: no override added
        ["experiment=digits_cnn", "model.optimizer.lr=0.01", "+trainer.limit_val_batches=2"],
    ],
)
def test_one_compose_gives_the_run_hydras_own_config(overrides, tmp_path, monkeypatch) -> None:
    hydras = run_app(overrides, tmp_path / "hydra", once=False, monkeypatch=monkeypatch)
    ours = run_app(overrides, tmp_path / "ours", once=True, monkeypatch=monkeypatch)
    assert (hydras["composes"], ours["composes"]) == (2, 1)
    [(hydras_cfg, hydras_node)], [(our_cfg, our_node)] = hydras["jobs"], ours["jobs"]
    assert our_cfg == hydras_cfg
    for node in (hydras_node, our_node):  # the one setting that differs on purpose
        node["run"]["dir"] = node["runtime"]["output_dir"] = node["sweep"]["dir"] = None
        node["overrides"]["hydra"] = [o for o in node["overrides"]["hydra"] if ".dir=" not in o]
    assert our_node == hydras_node
    assert our_node["mode"] == RunMode.RUN


def test_a_sweep_is_hydras_own(tmp_path, monkeypatch) -> None:
    """A sweep override (and -m) takes Hydra's own path: composed as often as before."""
    hydras = run_app(["-m", "seed=1,2"], tmp_path / "hydra", once=False, monkeypatch=monkeypatch)
    ours = run_app(["-m", "seed=1,2"], tmp_path / "ours", once=True, monkeypatch=monkeypatch)
    assert ours["composes"] == hydras["composes"]
    assert [cfg for cfg, _ in ours["jobs"]] == [cfg for cfg, _ in hydras["jobs"]]
    assert [OmegaConf.create(cfg).seed for cfg, _ in ours["jobs"]] == [1, 2]


def test_a_search_config_still_sweeps_without_m(tmp_path, monkeypatch) -> None:
    """hparams_search configs set hydra.mode=MULTIRUN: the kept compose reads it, and
    nothing is served to the sweep."""
    from hydra._internal.hydra import Hydra

    modes = []
    get_mode = Hydra.get_mode

    def recorded(self, *args, **kwargs):
        modes.append(get_mode(self, *args, **kwargs))
        raise SystemExit(0)  # the mode is what this test wants; no sweep runs

    with composed_once():
        monkeypatch.setattr(Hydra, "get_mode", recorded)
        argv = ["train.py", "hparams_search=digits_optuna"]
        monkeypatch.setattr(sys, "argv", [*argv, f"hydra.sweep.dir={tmp_path}"])
        app = hydra.main(version_base="1.3", config_path=str(CONFIGS), config_name="train.yaml")
        with pytest.raises(SystemExit):
            app(lambda cfg: None)()
    assert [str(mode) for mode in modes] == ["RunMode.MULTIRUN"]
