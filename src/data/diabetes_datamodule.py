"""scikit-learn's diabetes table as a CSV file: the offline example of tabular regression."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from src.data.tabular_datamodule import TabularDataModule
from src.utils.errors import UserInputError

FILE_NAME = "diabetes.csv"
TARGET = "progression"


def diabetes_csv() -> str:
    """The table in original units: age, sex, bmi, bp and six blood serum
    measurements (s1..s6) of 442 patients, and the disease progression one
    year later (the target)."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    return frame.rename(columns={"target": TARGET}).to_csv(index=False, float_format="%.10g")


class DiabetesDataModule(TabularDataModule):
    """``TabularDataModule`` over ``<data_dir>/diabetes.csv``, written from
    scikit-learn's bundled copy on first use (no download).

    An existing file is read as it is when it holds the same table, and never
    overwritten when it does not: the run stops and says so. ``shared``: the
    arguments of ``InMemoryDataModule``.
    """

    def __init__(
        self,
        data_dir: str = "data/",
        feature_columns: Sequence[str] | None = None,
        train_val_test_split: Sequence[float] = (0.7, 0.15, 0.15),
        batch_size: int = 32,
        **shared: Any,
    ) -> None:
        super().__init__(
            path=str(Path(data_dir) / FILE_NAME),
            target_columns=[TARGET],
            feature_columns=feature_columns,
            train_val_test_split=train_val_test_split,
            batch_size=batch_size,
            **shared,
        )

    def prepare_data(self) -> None:
        path = self.paths["all"]
        table = diabetes_csv()
        if path.exists():
            if path.read_text() != table:
                raise UserInputError(
                    f"{path} exists and is not scikit-learn's diabetes table, so it is not "
                    "overwritten. Move it away, or set paths.data_dir to another directory "
                    "(for a table of your own: data=tabular data.path=...)."
                )
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(table)
        partial.rename(path)
