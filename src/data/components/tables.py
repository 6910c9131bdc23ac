"""Read tables (CSV, Parquet, JSON, JSON Lines) and check them before they become tensors.

Every check fails with a ``UserInputError`` that names the file, what is
wrong with it, where (column, rows), and what to do: a table is user data,
and a wrong table should stop a run in its first second, not as a NaN loss
an hour later.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from src.utils.errors import UserInputError

# file extension -> (format name, reader)
READERS: dict[str, tuple[str, Callable[[Path], pd.DataFrame]]] = {
    ".csv": ("CSV", pd.read_csv),
    ".parquet": ("Parquet", pd.read_parquet),
    ".json": ("JSON", pd.read_json),
    ".jsonl": ("JSON Lines", lambda path: pd.read_json(path, lines=True)),
}


def read_table(path: str | Path) -> pd.DataFrame:
    """The table in ``path``, read by the reader its extension names."""
    path = Path(path)
    read_table_checks(path)
    kind, reader = READERS[path.suffix.lower()]
    try:
        frame = reader(path)
    except (ValueError, OSError) as error:  # pandas' and pyarrow's parse errors are ValueErrors
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserInputError(f"Data file {path} cannot be read as {kind}: {detail}") from error
    frame.columns = [str(column) for column in frame.columns]
    return frame


def read_table_checks(path: Path) -> None:
    """Stop unless ``path`` is a file with a table extension read here."""
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise UserInputError(
            f"Data file {path} {what}. Give the path of a table ({', '.join(READERS)})."
        )
    if path.suffix.lower() not in READERS:
        raise UserInputError(
            f"Data file {path} has the extension '{path.suffix}', which is not a table format "
            f"read here. Use one of: {', '.join(READERS)}."
        )


def iter_table(path: str | Path, rows: int) -> Iterator[pd.DataFrame]:
    """The table in ``path`` in parts of ``rows`` rows (CSV, Parquet, JSON Lines); a JSON
    array cannot be read in parts and comes whole."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        yield read_table(path)
        return
    read_table_checks(path)
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            parts = (b.to_pandas() for b in pq.ParquetFile(path).iter_batches(batch_size=rows))
        elif suffix == ".csv":
            parts = pd.read_csv(path, chunksize=rows)
        else:
            parts = pd.read_json(path, lines=True, chunksize=rows)
        for frame in parts:
            frame.columns = [str(column) for column in frame.columns]
            yield frame
    except (ValueError, OSError) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        kind = READERS[suffix][0]
        raise UserInputError(f"Data file {path} cannot be read as {kind}: {detail}") from error


def check_columns(frame: pd.DataFrame, wanted: Sequence[str], source: str, advice: str) -> None:
    """Stop unless every ``wanted`` column is in ``frame``; name the ones that exist."""
    missing = [column for column in wanted if column not in frame.columns]
    if not missing:
        return
    by_lower = {str(column).lower(): column for column in frame.columns}  # BMI for bmi
    guesses = {
        column: [
            by_lower[guess]
            for guess in difflib.get_close_matches(column.lower(), list(by_lower), n=1)
        ]
        for column in missing
    }
    hints = [
        f"'{column}' (did you mean '{guess[0]}'?)" for column, guess in guesses.items() if guess
    ]
    plain = [f"'{column}'" for column, guess in guesses.items() if not guess]
    raise UserInputError(
        f"{source} has no column {', '.join(hints + plain)}. Its columns are: "
        f"{', '.join(frame.columns)}. {advice}"
    )


def _row_list(rows: np.ndarray) -> str:
    shown = ", ".join(str(int(row) + 1) for row in rows[:5])
    return shown + (", ..." if len(rows) > 5 else "")


# what to do, in the messages of numeric_columns (training data by default)
NOT_NUMBERS_ADVICE = "Convert them to numbers, or leave the column out of data.feature_columns."
NOT_FINITE_ADVICE = "Fix the file, or set data.drop_na=true to leave those rows out."
# the largest magnitude a float32 holds: models compute in float32, larger values become inf
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_float32_range(table: pd.DataFrame, source: str) -> None:
    """Stop on finite values too large for float32 (they would become inf, then NaN)."""
    values = table.to_numpy()
    with np.errstate(invalid="ignore"):
        huge = np.isfinite(values) & (np.abs(values) > FLOAT32_MAX)
    if not huge.any():
        return
    column = int(np.flatnonzero(huge.any(axis=0))[0])
    rows = np.flatnonzero(huge[:, column])
    others = sorted({str(table.columns[i]) for i in np.flatnonzero(huge.any(axis=0))[1:]})
    raise UserInputError(
        f"Column '{table.columns[column]}' of {source} holds values beyond the float32 range "
        f"(largest magnitude {FLOAT32_MAX:.4g}) in {len(rows)} rows (rows {_row_list(rows)}; "
        f"the first is {values[rows[0], column]:.4g})"
        + (f"; so do columns {', '.join(others)}" if others else "")
        + ". The model computes in float32, where they would be infinite. Rescale the column "
        "(other units, or a logarithm), or fix the rows."
    )


def numeric_columns(
    frame: pd.DataFrame,
    columns: Sequence[str],
    source: str,
    drop_na: bool = False,
    advice: tuple[str, str] = (NOT_NUMBERS_ADVICE, NOT_FINITE_ADVICE),
    first_row: int = 0,
) -> pd.DataFrame:
    """``columns`` of ``frame`` as float64, every value finite and within float32's range.

    Rows with NaN or infinite values stop the run (naming column and rows),
    or, with ``drop_na``, are left out; the index of the result says which
    rows were kept. Rows are counted from 1, the header not counted.
    ``advice`` ends the message about values that are not numbers, and the
    one about values that are not finite. ``first_row``: the file row of the frame's
    first row (a part of a file read in parts), counted from 0.
    """
    numbers = {}
    for column in columns:
        values = frame[column]
        converted = pd.to_numeric(values, errors="coerce")
        not_numbers = np.flatnonzero(converted.isna().to_numpy() & values.notna().to_numpy())
        if len(not_numbers):
            first = values.iloc[not_numbers[0]]
            raise UserInputError(
                f"Column '{column}' of {source} holds values that are not numbers in "
                f"{len(not_numbers)} rows (rows {_row_list(not_numbers + first_row)}; the first is "
                f"{first!r}). {advice[0]}"
            )
        numbers[column] = converted.astype("float64")
    table = pd.DataFrame(numbers, index=frame.index)
    _check_float32_range(table, source)
    bad = ~np.isfinite(table.to_numpy())
    if not bad.any():
        return table
    if drop_na:
        return table[~bad.any(axis=1)]
    counts = [
        f"'{column}' in {int(bad[:, i].sum())} rows (rows {_row_list(np.flatnonzero(bad[:, i]) + first_row)})"
        for i, column in enumerate(columns)
        if bad[:, i].any()
    ]
    raise UserInputError(
        f"{source} has NaN or infinite values: column {'; column '.join(counts)}. {advice[1]}"
    )
