"""Merge a LoRA run's adapter into its base: ``python src/lora/merge.py run_dir=<LoRA run>``.

The result is an ordinary checkpoint of the plain model (no peft, no adapter
layers), written like a training run so that ``src/eval.py`` reads it as any
other: ``<run>/merged/checkpoints/<best checkpoint's name>`` holds the best
checkpoint's weights with the adapter merged in, and
``<run>/merged/.hydra/config.yaml`` the run's config without ``model.lora``.
``python src/eval.py run_dir=<run>/merged`` evaluates it. An existing merge is
never replaced unless ``overwrite=true``.
"""

from __future__ import annotations

from pathlib import Path

import rootutils
import torch
from omegaconf import DictConfig, OmegaConf

rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.lora.base_weights import NET_PREFIX  # noqa: E402
from src.lora.runs import LoRARun, without_lora  # noqa: E402
from src.utils.entry_point import entry_point  # noqa: E402
from src.utils.errors import UserInputError  # noqa: E402
from src.utils.logging_utils import RankedLogger  # noqa: E402

log = RankedLogger(__name__)


def merge(cfg: DictConfig) -> Path:
    """Write the merged checkpoint of the LoRA run ``cfg.run_dir``; returns its path."""
    run = LoRARun.read(cfg.run_dir, trust=bool(cfg.get("trust_run_dir")))
    target = run.run_dir / "merged"
    if target.exists() and not cfg.overwrite:
        raise UserInputError(
            f"{target} exists already: merge_lora never replaces a merged model. "
            "Pass overwrite=true to replace it."
        )
    best, saved = run.checkpoint_path, run.checkpoint()
    module = run.adapted_module(run.datamodule())
    merged_net = module.net.merge_and_unload()
    state = {k: v for k, v in saved["state_dict"].items() if not k.startswith(NET_PREFIX)}
    state.update({f"{NET_PREFIX}{k}": v for k, v in merged_net.state_dict().items()})
    checkpoint = {
        "state_dict": state,
        "epoch": saved["epoch"],
        "global_step": saved["global_step"],
        "pytorch-lightning_version": saved["pytorch-lightning_version"],
        "merged_from": {"checkpoint": str(best), "adapter": str(run.adapter_dir)},
    }
    ckpt_dir = target / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    for old in ckpt_dir.glob("*.ckpt"):  # overwrite=true: eval must find one checkpoint
        old.unlink()
    path = ckpt_dir / best.name
    torch.save(checkpoint, path)
    (target / ".hydra").mkdir(exist_ok=True)
    OmegaConf.save(without_lora(run.cfg), target / ".hydra" / "config.yaml")
    log.info(f"Merged {run.adapter_dir} into its base: {path}")
    return path


@entry_point("merge_lora.yaml")
def main(cfg: DictConfig) -> None:
    path = merge(cfg)
    print(f"Merged checkpoint: {path}")
    print(f"Evaluate it with: python src/eval.py run_dir={path.parent.parent}")


if __name__ == "__main__":
    main()
