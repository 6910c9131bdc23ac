"""A finished LoRA training run, read back from its directory.

A LoRA run (``+model/lora=...``) leaves its composed config in
``.hydra/config.yaml`` and its adapter, in peft's format, in ``adapter/``.
The adapter records its base (path and fingerprint), so the run's model can
be rebuilt as base plus adapter without the run's Lightning checkpoints: that
is what merging and fusing start from.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from lightning import LightningDataModule, LightningModule
from omegaconf import DictConfig, open_dict

from src.lora.net import load_adapted
from src.utils.errors import UserInputError
from src.utils.training_run import TrainingRun

# where callbacks.lora_adapter writes the adapter, inside the run directory
ADAPTER_DIR = "adapter"


def without_lora(cfg: DictConfig) -> DictConfig:
    """A copy of a run config whose model is the plain one (no ``model.lora``)."""
    plain = cfg.copy()
    with open_dict(plain):
        plain.model = cfg.model.copy()
        del plain.model["lora"]
    return plain


@dataclass(frozen=True)
class LoRARun(TrainingRun):
    """A LoRA training run: a ``TrainingRun`` with an adapter in ``<run_dir>/adapter/``."""

    @classmethod
    def read(
        cls, run_dir: str | Path, ckpt_path: str | Path | None = None, trust: bool = False
    ) -> LoRARun:
        """``trust``: skip the allow-list of the saved config's targets (trust_run_dir=true)."""
        base = TrainingRun.read(run_dir, ckpt_path, trust=trust)
        run = cls(base.cfg, base.ckpt_path, base.run_dir)
        if run.cfg.model.get("lora") is None:
            raise UserInputError(
                f"{run_dir} is not a LoRA run: its model config has no lora settings. Pass "
                "the directory of a run trained with +model/lora=... (or experiment=lora_*)."
            )
        if not (run.adapter_dir / "adapter_config.json").is_file():
            raise UserInputError(
                f"LoRA run {run_dir} has no adapter in {run.adapter_dir}/: it stopped before "
                "fitting ended, or ran without callbacks.lora_adapter."
            )
        return run

    @property
    def adapter_dir(self) -> Path:
        return self.run_dir / ADAPTER_DIR

    def plain_module(self, datamodule: LightningDataModule) -> LightningModule:
        """The run's task module without LoRA, its net fresh."""
        return replace(self, cfg=without_lora(self.cfg)).model(datamodule, weights=False)

    def adapted_module(
        self, datamodule: LightningDataModule, adapter_dir: Path | None = None
    ) -> LightningModule:
        """The run's task module with base plus adapter (this run's, or the one in
        ``adapter_dir``) as its net: the fine-tuned model, in eval mode."""
        module = self.plain_module(datamodule)
        module.net = load_adapted(module.net, adapter_dir or self.adapter_dir)
        return module.eval()
