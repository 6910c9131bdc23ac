"""Lightning's EMA of the weights, tested on the weights it validated and saved.

A checkpoint written with ``EMAWeightAveraging`` holds the average in ``state_dict`` and
the raw weights in ``current_model_state``. Lightning's callback keeps its average model
after ``fit``, so when ``train.py`` then tests the best checkpoint it loads
``current_model_state`` into the module, as for a resume: ``test/*`` measured weights that
validation never saw (the checkpoint was chosen by the average's ``val/acc``), and
``eval.py run_dir=...``, a new trainer, tested the average and disagreed.
"""

from __future__ import annotations

from typing import Any

from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import EMAWeightAveraging as LightningEMA
from lightning.pytorch.trainer.states import TrainerFn


class EMAWeightAveraging(LightningEMA):
    """``lightning.pytorch.callbacks.EMAWeightAveraging`` (same arguments) that restores its
    raw weights and average from a checkpoint only to resume fitting; a test, validation
    or prediction keeps the checkpoint's ``state_dict``, the average."""

    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
