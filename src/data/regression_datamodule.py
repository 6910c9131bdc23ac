"""What regression data modules share: per-channel standardisation that lives in checkpoints.

Inputs are standardised per channel (a table's column, a sequence's channel)
with the training split's statistics; targets are served in their original
units, and their mean and standard deviation go to the model through
``spec`` (the model standardises them for its loss and reports metrics in
the original units).

The fitted statistics, with the feature and target names, are the data
module's ``state_dict``: Lightning stores them in every checkpoint as
tensors and plain lists, and ``load_state_dict`` puts them back. Lightning
restores a checkpoint after ``setup()`` has already fitted statistics on
today's data, so ``load_state_dict`` normalises the splits again with the
restored ones: eval and prediction apply exactly the training scaling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from src.data.components.splits import SPLITS, Split, split_sizes
from src.data.in_memory_datamodule import InMemoryDataModule
from src.utils.errors import UserInputError

if TYPE_CHECKING:
    import pandas as pd

# what state_dict() holds
STATE_KEYS = (
    "feature_names",
    "target_names",
    "input_shape",
    "feature_mean",
    "feature_std",
    "target_mean",
    "target_std",
)

# every split's R² (torchmetrics) and the training targets' standard deviation need two values
MIN_SPLIT_SIZE = 2
WHY_TWO = " (R² and a standard deviation need two values)"


class RegressionDataModule(InMemoryDataModule):
    """Base class: a subclass's ``load_samples`` returns float inputs ``(N, C, ...)``
    (a table is ``(N, features)``) and targets ``(N, T)``, and it names both
    (``feature_names``: one per input value, ``target_names``: one per target)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scaling: dict[str, Any] = {}

    # -- what a subclass provides -------------------------------------------------

    @property
    def feature_names(self) -> list[str]:
        """One name per input value (valid once the data are loaded)."""
        raise NotImplementedError

    @property
    def target_names(self) -> list[str]:
        raise NotImplementedError

    # what a sample is called in messages (a table's subclass: rows)
    unit = "samples"

    # -- splits: two samples each at least -----------------------------------------

    def split_sizes(self, total: int) -> list[int]:
        return split_sizes(
            self.train_val_test_split, total, self.source, MIN_SPLIT_SIZE, WHY_TWO, self.unit
        )

    def finish_split(self, split: Split) -> Split:
        """Stop, before anything trains, on a split too small for the metrics (splits
        given by a column, one file per split, or a fold of a small pool)."""
        sizes = {name: len(split.parts[name][0]) for name in SPLITS}
        if min(sizes.values()) < MIN_SPLIT_SIZE:
            folds = (
                f" (fold {self.fold} of data.num_folds={self.num_folds})" if self.num_folds else ""
            )
            raise UserInputError(
                f"{self.source} gives the splits {sizes} {self.unit}{folds}: every split needs "
                f"at least {MIN_SPLIT_SIZE}{WHY_TWO}. Add {self.unit} to the small splits"
                + (", or use fewer folds." if folds else ".")
            )
        return super().finish_split(split)

    # -- standardisation ----------------------------------------------------------

    def fit_normalisation(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if self.scaling:  # restored from a checkpoint: it must describe these data
            self._check_restored_names()
            return
        dims = [d for d in range(x.ndim) if d != 1]  # all but the channel
        self.scaling = {
            "feature_names": list(self.feature_names),
            "target_names": list(self.target_names),
            "input_shape": list(x.shape[1:]),
            "feature_mean": x.mean(dim=dims),
            "feature_std": x.std(dim=dims).clamp_min(1e-8),
            "target_mean": y.mean(dim=0),
            "target_std": y.std(dim=0).clamp_min(1e-8),
        }

    def _check_restored_names(self) -> None:
        for key in ("feature_names", "target_names"):
            saved, now = self.scaling[key], list(getattr(self, key))
            if saved != now:
                raise UserInputError(
                    f"The checkpoint was trained with {key.replace('_', ' ')} {saved}, but "
                    f"{self.source} now gives {now}. Use the data of the training run "
                    "(eval.py run_dir=<run> does this for you)."
                )

    def scale_inputs(self, x: torch.Tensor) -> torch.Tensor:
        shape = [1, -1] + [1] * (x.ndim - 2)
        mean = self.scaling["feature_mean"].view(shape)
        std = self.scaling["feature_std"].view(shape)
        return ((x - mean) / std).contiguous()

    def normalise(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.scale_inputs(x), y.float().contiguous()

    # -- checkpoints ------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return dict(self.scaling)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        missing = [key for key in STATE_KEYS if key not in state_dict]
        if missing:
            raise UserInputError(
                f"The checkpoint's state of {type(self).__name__} lacks {', '.join(missing)}: "
                "it was written by another version of the data module."
            )
        self.scaling = {key: state_dict[key] for key in STATE_KEYS}
        if self.splits:  # normalised with statistics fitted to today's data: redo
            self.splits = {}
            self.setup()

    # -- what models and predictions need -----------------------------------------------

    @property
    def spec(self) -> dict[str, Any]:
        if not self.scaling:
            self.setup()
        return {
            "input_shape": list(self.scaling["input_shape"]),
            "num_targets": len(self.scaling["target_names"]),
            "target_names": list(self.scaling["target_names"]),
            "target_mean": self.scaling["target_mean"].tolist(),
            "target_std": self.scaling["target_std"].tolist(),
        }

    def rows_to_inputs(self, rows: pd.DataFrame, source: str) -> torch.Tensor:
        """Standardised model inputs from a table with one row per sample, its columns
        named like the training features (other columns are ignored)."""
        from src.data.components.tables import check_columns, numeric_columns

        if not self.scaling:
            self.setup()
        names = self.scaling["feature_names"]
        check_columns(rows, names, source, f"The model takes these features: {', '.join(names)}.")
        advice = ("Give numbers only.", "Every feature of every row needs a finite value.")
        # a copy: pandas 3 hands out read-only views, which torch.from_numpy warns about
        values = numeric_columns(rows, names, source, advice=advice).to_numpy(np.float32, copy=True)
        x = torch.from_numpy(values).reshape(-1, *self.scaling["input_shape"])
        return self.scale_inputs(x)
