"""Write a LoRA run's adapter in peft's own format when fitting ends."""

from __future__ import annotations

from pathlib import Path

from lightning import Callback, LightningModule, Trainer

from src.lora.base_weights import NET_PREFIX
from src.lora.net import LoRANet
from src.utils.checkpoints import read_checkpoint
from src.utils.errors import UserInputError
from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__)


class SaveAdapter(Callback):
    """Saves the adapter of the best checkpoint (as ``ModelCheckpoint`` chose it, the
    weights the run is tested with), not the last epoch's, to ``dirpath``.

    Without a checkpoint callback the current weights are saved, with a warning.
    """

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        net = getattr(pl_module, "net", None)
        if not isinstance(net, LoRANet):
            raise UserInputError(
                f"callbacks.lora_adapter saves LoRA adapters, but the model's net is a "
                f"{type(net).__name__}. Add +model/lora=default (and model.lora.base_ckpt), "
                "or drop the callback with callbacks.lora_adapter=null."
            )

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if best:
            saved = read_checkpoint(best)["state_dict"]
            state = {
                k.removeprefix(NET_PREFIX): v for k, v in saved.items() if k.startswith(NET_PREFIX)
            }
        else:
            log.warning("No best checkpoint: the adapter of the last weights is saved.")
            state = None
        pl_module.net.save_adapter(self.dirpath, state)
        log.info(f"Adapter of {best or 'the last weights'} saved to {self.dirpath}")
