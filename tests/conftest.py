"""Shared fixtures: composed configs pointed at temporary directories, and CLI runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import rootutils
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

ROOT = rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)
CONFIGS = str(ROOT / "configs")


def compose_config(
    name: str, overrides: list[str], tmp_path: Path, quiet: bool = True
) -> DictConfig:
    """Compose configs/<name> with the overrides, writing everything under tmp_path."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose(
            config_name=name,
            overrides=overrides,
            return_hydra_config=True,
        )
    with open_dict(cfg):
        if quiet:  # no progress bars, model summaries or config trees in tests
            for key in ("rich_progress_bar", "model_summary"):
                if cfg.get("callbacks") and key in cfg.callbacks:
                    del cfg.callbacks[key]
            cfg.extras.print_config = False
        cfg.paths.output_dir = str(tmp_path)
        cfg.paths.log_dir = str(tmp_path)
        cfg.trainer.enable_progress_bar = False
        cfg.trainer.enable_model_summary = False
    HydraConfig.instance().set_config(cfg)
    return cfg


def save_run_config(cfg: DictConfig, run_dir: Path) -> None:
    """Save the composed config in ``<run_dir>/.hydra/config.yaml`` as Hydra does for a
    run (without Hydra's own node), for the tools that read a run back (``run_dir=``)."""
    saved = cfg.copy()
    with open_dict(saved):
        del saved["hydra"]
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(saved, run_dir / ".hydra" / "config.yaml")


def train_run(run_dir: Path, *overrides: str) -> tuple[dict[str, float], dict[str, Any]]:
    """Train in-process, saving the composed config as Hydra would (the tools that read a
    run back, merge and fuse, need it); returns (metrics as floats, objects)."""
    from src.train import train

    cfg = compose_config("train.yaml", list(overrides), run_dir)
    save_run_config(cfg, run_dir)
    metrics, objects = train(cfg)
    return {k: float(v) for k, v in metrics.items()}, objects


def vimh_overrides(parent: Path, size: int) -> list[str]:
    """Overrides that point data=vimh at a simple_saw set of ``size`` samples under
    ``parent``, generated on first use."""
    name = f"vimh-32x32x1_8000Hz_1p0s_{size}dss_simple_saw_2p"
    return [
        f"paths.data_dir={parent}",
        "data.generate=true",
        f"data.generation.size={size}",
        f"data.data_dir={parent / name}",
    ]


def run_cli(script: str, *overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python src/<script> overrides...`` as a user would, from the project root."""
    # pytest-xdist's workers set COLUMNS and LINES (80x24): not what a user's shell exports
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "COLUMNS", "LINES")}
    return subprocess.run(
        [sys.executable, str(ROOT / "src" / script), *overrides],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def end_process_group(process: subprocess.Popen, grace_s: float = 60) -> None:
    """End a server started with ``start_new_session=True`` and every process it started:
    SIGTERM to its group, SIGKILL after ``grace_s`` seconds if it is still there."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def cfg_train(tmp_path: Path) -> DictConfig:
    """The default training config, for short CPU runs."""
    return compose_config("train.yaml", ["trainer.max_epochs=1", "logger=csv"], tmp_path)


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data_dir with MNIST-format files (real digits, upscaled): 1,200 + 300 images."""
    from src.data.components.idx import digits_as_mnist, write_mnist_like

    data_dir = tmp_path_factory.mktemp("mnist_small")
    images, labels = digits_as_mnist(1500, seed=0)
    write_mnist_like(
        data_dir / "MNIST" / "raw",
        train=(images[:1200], labels[:1200]),
        test=(images[1200:], labels[1200:]),
    )
    return data_dir
