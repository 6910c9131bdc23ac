"""A run directory is code: a saved run config instantiates only allow-listed targets,
and no message ever advises torch.load(weights_only=False)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from src.lora.base_weights import BaseWeights
from src.utils.checkpoints import read_checkpoint, run_config
from src.utils.errors import UserInputError
from src.utils.trusted_targets import refused
from tests.conftest import ROOT, run_cli


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _planted_run(tmp_path: Path) -> tuple[Path, Path]:
    """A run directory whose saved model config runs a pickle payload when instantiated."""
    marker = tmp_path / "payload_ran"
    evil = tmp_path / "evil.pt"
    torch.save({"x": Payload(marker)}, evil)
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    cfg = OmegaConf.load(ROOT / "configs" / "data" / "digits.yaml")
    model = {"_target_": "torch.load", "f": str(evil), "weights_only": False}
    OmegaConf.save({"data": cfg, "model": model}, run_dir / ".hydra" / "config.yaml")
    return run_dir, marker


def test_planted_target_is_refused_by_name(tmp_path: Path) -> None:
    run_dir, marker = _planted_run(tmp_path)
    with pytest.raises(UserInputError, match=r"torch\.load \(at model\).*trust_run_dir=true"):
        run_config(run_dir)
    assert run_config(run_dir, trust=True).model._target_ == "torch.load"  # trusted: read
    assert not marker.exists()


def test_eval_refuses_a_planted_run_dir(tmp_path: Path) -> None:
    run_dir, marker = _planted_run(tmp_path)
    done = run_cli("eval.py", f"run_dir={run_dir}", f"paths.log_dir={tmp_path / 'logs'}")
    assert done.returncode == 1, done.stderr[-2000:]
    assert "torch.load" in done.stderr and "Traceback" not in done.stderr
    assert not marker.exists()  # the payload never ran


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("src.models.classification_module.ClassificationModule", True),
        ("torch.optim.Adam", True),
        ("torch.nn.HuberLoss", True),
        ("lightning.pytorch.callbacks.EarlyStopping", True),
        ("optuna.samplers.TPESampler", True),
        ("peft.LoraConfig", True),
        ("torch.load", False),
        ("torch.hub.load", False),
        ("torch.jit.ScriptModule", False),
        ("lightning.fabric.utilities.cloud_io._load", False),
        ("src.utils.atomic.write_bytes", False),
        ("os.system", False),
        ("builtins.exec", False),
        ("${oc.env:TARGET}", False),
        ("torch.utils.collect_env.run", False),  # subprocess.Popen(command, shell=True)
        ("lightning.pytorch.cli.LightningCLI", False),  # imports any class_path it is given
        ("torchvision.datasets.utils.extract_archive", False),
        ("torch.onnx.export", False),
        ("peft.PeftModel.from_pretrained", False),
        ("torch.utils.model_zoo.load_url", False),
        # src functions that start a child src/train.py on the config's own overrides (a
        # planted run dir ran a shell command through one) or rewrite folders
        ("src.reports.study_report.train_with", False),
        ("src.lora.base_run.train_base", False),
        ("src.tools.to_shards.convert", False),
        ("src.utils.ddp_launcher.JobScopedDDPStrategy", True),
        ("src.utils.loggers.mlflow_logger", True),
    ],
)
def test_allow_list(target: str, allowed: bool) -> None:
    assert (refused(target) is None) == allowed


def test_every_shipped_config_target_is_allowed() -> None:
    from src.utils.trusted_targets import targets_in

    for path in (ROOT / "configs").rglob("*.yaml"):
        if "hydra" in path.parts:  # the sweeper is Hydra's, never in a saved run config
            continue
        for where, target in targets_in(OmegaConf.load(path)):
            assert refused(target) is None, f"{path}: {where} {target}"


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".safetensors"])
def test_random_bytes_are_one_message_without_unsafe_advice(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"random{suffix}"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(UserInputError) as caught:
        read_checkpoint(path) if suffix == ".ckpt" else BaseWeights.read(path)
    assert str(path) in str(caught.value)
    assert "weights_only" not in str(caught.value)


def test_pickled_checkpoint_names_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "x": Payload(tmp_path / "m")}, path)
    with pytest.raises(UserInputError) as caught:
        read_checkpoint(path)
    assert "pickled Python objects" in str(caught.value) and "system" in str(caught.value)
    assert "weights_only" not in str(caught.value)


def test_a_saved_lora_config_may_not_train_its_base(tmp_path: Path) -> None:
    """A LoRA net with no base trains one on first use, with src/train.py and the config's
    base_overrides (here: a callback that runs a pickle payload): from a saved run config
    that is not trusted, a missing base is an error and nothing is trained."""
    import hydra

    from src.utils.training_run import TrainingRun
    from tests.conftest import compose_config, save_run_config

    marker = tmp_path / "payload_ran"
    evil = tmp_path / "evil.pt"
    torch.save({"x": Payload(marker)}, evil)
    planted = ["+callbacks.payload._target_=torch.load", f"+callbacks.payload.f={evil}"]
    planted += ["+callbacks.payload.weights_only=false", "trainer.max_epochs=1"]
    bases = tmp_path / "bases"
    run_dir = tmp_path / "run"
    cfg = compose_config(
        "train.yaml",
        ["experiment=lora_digits", f"model.lora.base_runs_dir={bases}"],
        run_dir,
    )
    with open_dict(cfg):
        cfg.model.lora.base_overrides = planted
    save_run_config(cfg, run_dir)
    run = TrainingRun.read(run_dir)
    with pytest.raises(UserInputError, match="may not start a training run.*trust_run_dir"):
        run.model(hydra.utils.instantiate(run.cfg.data), weights=False)
    assert not marker.exists() and not bases.exists()  # no child run, no base directory
    assert "train_missing_base" not in run_config(run_dir, trust=True).model.lora
