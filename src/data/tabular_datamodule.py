"""Regression on a table of your own: CSV, Parquet, JSON or JSON Lines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from src.data.components.memmap_loader import MemmapMode
from src.data.components.splits import SPLITS, Split, numbered_in_turn
from src.data.components.table_cache import DROPPED, memmap_splits
from src.data.components.tables import check_columns, numeric_columns, read_table
from src.data.regression_datamodule import RegressionDataModule
from src.utils.errors import UserInputError
from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__)


class TabularDataModule(MemmapMode, RegressionDataModule):
    """Feature columns in, target columns out, one sample per row.

    The rows are split at random (``train_val_test_split``, seeded by
    ``split_seed``), by a column that names each row's split
    (``split_column``), or come in one file per split (``path`` a mapping).
    Features are standardised per column with the training split's
    statistics; see ``RegressionDataModule`` for how they are kept.

    Args:
        path: the table, or ``{train: ..., val: ..., test: ...}``, one file each.
        target_columns: the column, or columns, to predict.
        feature_columns: the input columns; ``None`` takes every column but the
            targets and the split column.
        train_val_test_split: fractions (adding up to 1) or counts of the rows.
        split_column: a column whose values (train, val, test) place each row.
        drop_na: leave out rows with NaN or infinite values instead of stopping.
        in_memory: hold the table in memory (the speed path); ``False``: read it once in
            parts into a float32 cache under ``cache_dir`` and cut batches from it in place
            (``components.table_cache``: tables larger than memory; the same splits,
            standardisation and batches).
        cache_dir: where ``in_memory=False`` keeps its caches (named by file and settings).
        batch_size, shared: see ``InMemoryDataModule`` (the folds deal out the
            train and val rows).
    """

    def __init__(
        self,
        path: str | Mapping[str, str] | None = None,
        target_columns: str | Sequence[str] | None = None,
        feature_columns: Sequence[str] | None = None,
        train_val_test_split: Sequence[float] = (0.7, 0.15, 0.15),
        split_column: str | None = None,
        drop_na: bool = False,
        batch_size: int = 64,
        in_memory: bool = True,
        cache_dir: str = "data/tabular_cache",
        **shared: Any,
    ) -> None:
        paths: dict[str, Path] = {}
        if isinstance(path, Mapping):
            paths = {name: Path(file) for name, file in path.items()}
        elif path:
            paths = {"all": Path(path)}
        super().__init__(
            str(next(iter(paths.values())).parent) if paths else ".",
            train_val_test_split,
            batch_size,
            **shared,
        )
        self.paths = paths
        self.targets = (
            [target_columns] if isinstance(target_columns, str) else list(target_columns or [])
        )
        self.features = list(feature_columns) if feature_columns is not None else None
        self.feature_columns = self.features  # as configured (features: as found in the file)
        self.split_column = split_column
        self.drop_na = drop_na
        self.in_memory = in_memory
        self.cache_dir = cache_dir
        self.datasets: dict[str, Any] = {}  # the cached splits (in_memory=False)

    # -- in_memory=False: the splits read from a cache in place (MemmapMode) -----------

    def memmap_splits(self) -> tuple[dict[str, Any], Any, Any]:
        return memmap_splits(self)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        if self.datasets:  # standardised with statistics fitted to today's rows: redo
            self.datasets = {}
            self.setup()

    unit = "rows"  # in messages

    def check_settings(self) -> None:
        """Stop on settings that cannot describe a table (checked on first use: Hydra
        would wrap an error raised in ``__init__`` into its own)."""
        if not self.paths:
            raise UserInputError("data.path is not set: give the table, e.g. data.path=rows.csv.")
        if not self.targets:
            raise UserInputError(
                "data.target_columns is not set: name the column(s) to predict, "
                "e.g. data.target_columns=[price]."
            )
        if "all" not in self.paths and sorted(self.paths) != sorted(SPLITS):
            raise UserInputError(
                f"data.path gives files for {sorted(self.paths)}: give one file for each of "
                f"{', '.join(SPLITS)}, or a single file."
            )
        if "all" not in self.paths and self.split_column:
            raise UserInputError(
                "data.split_column cannot split files that are already one per split: "
                "set data.split_column=null, or give data.path a single file."
            )

    @property
    def source(self) -> str:
        return ", ".join(str(p) for p in self.paths.values())

    @property
    def feature_names(self) -> list[str]:
        if self.features is None:
            raise RuntimeError("feature_names is known once the table has been read")
        return self.features

    @property
    def target_names(self) -> list[str]:
        return self.targets

    def table_columns(self, frame: Any, path: Path) -> list[str]:
        """The feature columns of ``frame`` (all but targets and split column when
        ``feature_columns`` is null), once the columns named are checked to be there."""
        check_columns(
            frame,
            self.targets + ([self.split_column] if self.split_column else []),
            f"Data file {path}",
            "Set data.target_columns (and data.split_column) to columns of the file.",
        )
        if self.features is None:
            chosen = set(self.targets) | {self.split_column}
            self.features = [column for column in frame.columns if column not in chosen]
        overlap = sorted(set(self.features) & set(self.targets))
        if overlap:
            raise UserInputError(
                f"Column(s) {overlap} of {path} are both features and targets: "
                "take them out of data.feature_columns."
            )
        check_columns(
            frame,
            self.features,
            f"Data file {path}",
            "Set data.feature_columns to columns of the file (null: all but the targets).",
        )
        return self.features

    def _read(self, path: Path) -> tuple[torch.Tensor, torch.Tensor, np.ndarray | None]:
        """Features, targets and (with ``split_column``) each row's split, from one file."""
        frame = read_table(path)
        self.table_columns(frame, path)
        numbers = numeric_columns(
            frame, self.features + self.targets, f"Data file {path}", self.drop_na
        )
        if len(numbers) < len(frame):
            log.warning(
                f"data.drop_na=true: left out {len(frame) - len(numbers)} rows of {path} "
                "with NaN or infinite values."
            )
        x = torch.from_numpy(numbers[self.features].to_numpy(np.float32, copy=True))
        y = torch.from_numpy(numbers[self.targets].to_numpy(np.float32, copy=True))
        labels = None
        if self.split_column:
            labels = frame.loc[numbers.index, self.split_column].astype(str).to_numpy()
        return x, y, labels

    def load_samples(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y, _ = self._read(self.paths["all"])
        return x, y

    def load_splits(self) -> Split:
        self.check_settings()
        self.prepare_data()  # a subclass may write its table there on first use
        dropped = DROPPED if self.drop_na else ""
        if "all" not in self.paths:
            splits = {}
            for name in SPLITS:
                x, y, _ = self._read(self.paths[name])
                if len(x) == 0:
                    raise UserInputError(
                        f"Data file {self.paths[name]} ({name} split) has no rows."
                    )
                splits[name] = (x, y)
            files = ", ".join(str(self.paths[name]) for name in SPLITS)
            return numbered_in_turn(splits, f"the rows of {files}, one file after another{dropped}")
        if not self.split_column:
            split = super().load_splits()
            return split._replace(indexed=split.indexed + dropped)
        path = self.paths["all"]
        x, y, labels = self._read(path)
        unknown = sorted(set(labels) - set(SPLITS))
        if unknown:
            raise UserInputError(
                f"Column '{self.split_column}' of {path} holds {unknown[:5]}: each row's split "
                f"must be one of {', '.join(SPLITS)}."
            )
        counts = {name: int((labels == name).sum()) for name in SPLITS}
        if min(counts.values()) == 0:
            raise UserInputError(
                f"Column '{self.split_column}' of {path} gives the splits {counts} rows: "
                "every split needs at least one row."
            )
        indices = {name: torch.from_numpy(np.flatnonzero(labels == name)) for name in SPLITS}
        parts = {name: (x[index], y[index]) for name, index in indices.items()}
        return Split(parts, indices, f"the {len(x)} rows of {path}, in file order{dropped}")
