"""Tabular regression data: file formats, splits, scaling kept in checkpoints, bad tables,
the diabetes table written on first use, and the generated signals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from lightning import Trainer

from src.data.diabetes_datamodule import DiabetesDataModule, diabetes_csv
from src.data.signals_datamodule import SignalsDataModule
from src.data.tabular_datamodule import TabularDataModule
from src.models.components.regression_mlp import RegressionMLP
from src.utils.batchnorm import fit_batches_to_batchnorm
from src.utils.errors import UserInputError


def make_table(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    """Three features on different scales and two targets that depend on them."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "a": rng.normal(10.0, 2.0, rows),
            "b": rng.normal(-3.0, 0.5, rows),
            "c": rng.uniform(0.0, 100.0, rows),
        }
    )
    frame["y"] = 3.0 * frame["a"] - 4.0 * frame["b"] + rng.normal(0, 0.1, rows)
    frame["z"] = 0.01 * frame["c"] + 50.0
    return frame


def write(frame: pd.DataFrame, path: Path) -> Path:
    writers = {
        ".csv": lambda: frame.to_csv(path, index=False),
        ".parquet": lambda: frame.to_parquet(path, index=False),
        ".json": lambda: frame.to_json(path, orient="records"),
        ".jsonl": lambda: frame.to_json(path, orient="records", lines=True),
    }
    writers[path.suffix]()
    return path


def setup_module_for(path: Path | dict, **kwargs) -> TabularDataModule:
    dm = TabularDataModule(path=path, **{"target_columns": ["y", "z"], **kwargs})
    dm.setup()
    return dm


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json", ".jsonl"])
def test_every_format_gives_the_same_splits(suffix: str, tmp_path: Path) -> None:
    table = make_table()
    reference = setup_module_for(write(table, tmp_path / "t.csv"))
    dm = setup_module_for(write(table, tmp_path / f"t{suffix}"))
    for name in ("train", "val", "test"):
        for got, want in zip(dm.splits[name], reference.splits[name], strict=True):
            assert torch.allclose(got, want, atol=1e-5)
    assert {name: len(x) for name, (x, _) in dm.splits.items()} == {
        "train": 140,
        "val": 30,
        "test": 30,
    }


def test_features_standardised_on_train_only_targets_in_original_units(tmp_path: Path) -> None:
    table = make_table()
    dm = setup_module_for(write(table, tmp_path / "t.csv"))
    x, y = dm.splits["train"]
    assert dm.feature_names == ["a", "b", "c"]  # feature_columns=null: all but the targets
    assert torch.allclose(x.mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(x.std(0), torch.ones(3), atol=1e-5)
    assert not torch.allclose(dm.splits["val"][0].mean(0), torch.zeros(3), atol=1e-3)
    # targets stay in their units; their training statistics go to the model
    assert float(y[:, 1].min()) >= 50.0
    spec = dm.spec
    assert spec["input_shape"] == [3] and spec["num_targets"] == 2
    assert spec["target_names"] == ["y", "z"]
    assert spec["target_mean"] == pytest.approx(y.mean(0).tolist(), rel=1e-5)
    assert spec["target_std"] == pytest.approx(y.std(0).tolist(), rel=1e-5)


def test_split_column_and_one_file_per_split(tmp_path: Path) -> None:
    table = make_table()
    table["part"] = ["train"] * 120 + ["val"] * 40 + ["test"] * 40
    dm = setup_module_for(write(table, tmp_path / "t.csv"), split_column="part")
    assert [len(dm.splits[n][0]) for n in ("train", "val", "test")] == [120, 40, 40]
    assert dm.feature_names == ["a", "b", "c"]  # the split column is no feature
    files = {
        name: str(write(part.drop(columns="part"), tmp_path / f"{name}.parquet"))
        for name, part in table.groupby("part")
    }
    per_file = setup_module_for(files)
    for name in ("train", "val", "test"):
        assert torch.allclose(per_file.splits[name][1], dm.splits[name][1])


def test_scaling_is_saved_in_the_checkpoint_and_applied_on_restore(tmp_path: Path) -> None:
    """eval on changed data still applies the training scaling, although Lightning
    restores the data module's state only after setup() has fitted new statistics."""
    table = make_table()
    trained = setup_module_for(write(table, tmp_path / "t.csv"))
    state = trained.state_dict()
    assert all(isinstance(state[k], torch.Tensor) for k in ("feature_mean", "target_std"))

    from src.models.regression_module import RegressionModule

    model = RegressionModule(
        net=RegressionMLP([3], 2, hidden_sizes=[8]),
        optimizer=lambda params: torch.optim.Adam(params),
        **{k: trained.spec[k] for k in ("target_names", "target_mean", "target_std")},
    )
    trainer = Trainer(
        max_epochs=1, logger=False, enable_progress_bar=False, default_root_dir=tmp_path
    )
    trainer.fit(model, datamodule=trained)
    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)
    saved = torch.load(ckpt, weights_only=True)  # tensors and plain lists only
    assert torch.equal(saved["TabularDataModule"]["feature_mean"], state["feature_mean"])

    shifted = table.copy()
    shifted[["a", "b", "c"]] *= 3.0  # same columns, other statistics
    changed = TabularDataModule(
        path=str(write(shifted, tmp_path / "t2.csv")), target_columns=["y", "z"]
    )
    tester = Trainer(logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    tester.test(model, datamodule=changed, ckpt_path=ckpt)
    raw_test = torch.tensor(shifted[["a", "b", "c"]].to_numpy(np.float32))
    expected = (raw_test - state["feature_mean"]) / state["feature_std"]
    test_x = changed.splits["test"][0]
    assert torch.equal(changed.scaling["feature_mean"], state["feature_mean"])
    # each test row is a training-scaled row of the changed table
    distances = torch.cdist(test_x, expected, compute_mode="donot_use_mm_for_euclid_dist")
    distances = distances.min(dim=1).values
    assert float(distances.max()) < 1e-4


def test_restored_scaling_must_match_the_columns(tmp_path: Path) -> None:
    trained = setup_module_for(write(make_table(), tmp_path / "t.csv"))
    other = TabularDataModule(
        path=str(tmp_path / "t.csv"), target_columns=["y", "z"], feature_columns=["a", "b"]
    )
    other.setup()
    with pytest.raises(UserInputError, match=r"feature names \['a', 'b', 'c'\]"):
        other.load_state_dict(trained.state_dict())


def test_batchnorm_drops_the_incomplete_last_batch(tmp_path: Path) -> None:
    dm = setup_module_for(write(make_table(), tmp_path / "t.csv"), batch_size=32)
    assert [len(b[0]) for b in dm.train_dataloader()][-1] == 140 - 4 * 32
    fit_batches_to_batchnorm(RegressionMLP([3], 2, batch_norm=True), dm)
    assert [len(b[0]) for b in dm.train_dataloader()] == [32] * 4
    dm.batch_size = 200  # more than the training split: no batch at all would be left
    with pytest.raises(UserInputError, match="fewer than data.batch_size=200"):
        dm.train_dataloader()


def expect_error(tmp_path: Path, frame: pd.DataFrame, *phrases: str, **kwargs) -> None:
    path = write(frame, tmp_path / "bad.csv")
    with pytest.raises(UserInputError) as error:
        setup_module_for(path, **kwargs)
    message = str(error.value)
    for phrase in [str(path), *phrases]:
        assert phrase in message, (phrase, message)


def test_missing_file_and_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match=f"Data file {tmp_path / 'no.csv'} does not exist"):
        setup_module_for(tmp_path / "no.csv")
    (tmp_path / "t.xlsx").write_text("a,b")
    with pytest.raises(UserInputError, match=r"extension '\.xlsx'.*\.csv, \.parquet"):
        setup_module_for(tmp_path / "t.xlsx")


def test_misspelled_columns_name_the_ones_that_exist(tmp_path: Path) -> None:
    expect_error(
        tmp_path, make_table(), "'yy' (did you mean 'y'?)", "a, b, c, y, z", target_columns="yy"
    )
    expect_error(tmp_path, make_table(), "no column 'q'", feature_columns=["a", "q"])
    expect_error(tmp_path, make_table(), "both features and targets", feature_columns=["a", "y"])


def test_non_numeric_values(tmp_path: Path) -> None:
    table = make_table().astype({"b": object})
    table.loc[5, "b"] = "n/a?"
    expect_error(tmp_path, table, "Column 'b'", "not numbers in 1 rows", "rows 6", "'n/a?'")


def test_nan_and_infinite_values_are_counted_or_dropped(tmp_path: Path) -> None:
    table = make_table()
    table.loc[[3, 7], "a"] = np.nan
    table.loc[9, "y"] = np.inf
    expect_error(
        tmp_path, table, "'a' in 2 rows (rows 4, 8)", "'y' in 1 rows (rows 10)", "drop_na=true"
    )
    dm = setup_module_for(tmp_path / "bad.csv", drop_na=True)
    assert sum(len(x) for x, _ in dm.splits.values()) == 197


def test_values_beyond_float32_are_named_at_load_time(tmp_path: Path) -> None:
    # 1e300 is finite as float64 but infinite as float32: the run would train on NaN
    table = make_table()
    table.loc[7, "b"] = 1e300
    table.loc[[11, 12], "z"] = -1e39
    expect_error(
        tmp_path,
        table,
        "Column 'b'",
        "beyond the float32 range",
        "3.403e+38",
        "rows 8;",
        "1e+300",
        "so do columns z",
        "Rescale",
    )
    # with data.drop_na too: such a value is not a NaN row to drop silently
    with pytest.raises(UserInputError, match="beyond the float32 range"):
        setup_module_for(tmp_path / "bad.csv", drop_na=True)
    table.loc[[7, 11, 12], ["b", "z"]] = 3.0e38  # the largest float32s are fine
    dm = setup_module_for(write(table, tmp_path / "edge.csv"))
    assert sum(len(x) for x, _ in dm.splits.values()) == 200


def test_too_few_rows_for_the_splits(tmp_path: Path) -> None:
    # regression needs two rows per split (R², the targets' standard deviation)
    expect_error(
        tmp_path,
        make_table(rows=5),
        "its 5 rows make splits of [3, 1, 1]",
        "at least 2 (R²",
        "These fractions need at least 10 rows",
        "at least 6 rows",
    )
    expect_error(tmp_path, make_table(rows=8), "[6, 1, 1]", "train_val_test_split=[4, 2, 2]")
    expect_error(
        tmp_path,
        make_table(rows=8),
        "must add up to 8 and each be at least 2",
        train_val_test_split=[6, 1, 1],
    )
    assert len(setup_module_for(write(make_table(10), tmp_path / "ten.csv")).splits["val"][0]) == 2
    table = make_table(rows=20)
    table["part"] = ["train"] * 17 + ["val", "val", "test"]
    expect_error(tmp_path, table, "{'train': 17, 'val': 2, 'test': 1} rows", split_column="part")
    expect_error(  # 12 train + val rows in 7 folds: a fold of 1 row
        tmp_path,
        make_table(rows=16),
        "(fold 6 of data.num_folds=7)",
        "fewer folds",
        train_val_test_split=[10, 2, 4],
        num_folds=7,
        fold=6,
    )
    table = make_table()
    table["part"] = "train"
    expect_error(tmp_path, table, "Column 'part'", "'val': 0", split_column="part")
    table["part"] = "validation"
    expect_error(tmp_path, table, "['validation']", "train, val, test", split_column="part")


def test_diabetes_written_once_never_overwritten(tmp_path: Path) -> None:
    dm = DiabetesDataModule(data_dir=str(tmp_path))
    dm.setup()
    path = tmp_path / "diabetes.csv"
    assert path.read_text() == diabetes_csv()
    assert sum(len(x) for x, _ in dm.splits.values()) == 442
    assert dm.spec["target_names"] == ["progression"] and dm.spec["input_shape"] == [10]
    DiabetesDataModule(data_dir=str(tmp_path)).setup()  # the same table: read as it is
    path.write_text(diabetes_csv().replace("151", "152", 1))
    with pytest.raises(UserInputError, match="is not scikit-learn's diabetes table"):
        DiabetesDataModule(data_dir=str(tmp_path)).setup()
    assert diabetes_csv().replace("151", "152", 1) == path.read_text()


def test_signals_are_generated_from_the_seed(tmp_path: Path) -> None:
    def make(seed: int) -> SignalsDataModule:
        dm = SignalsDataModule(num_samples=300, length=64, generation_seed=seed)
        dm.setup()
        return dm

    dm = make(0)
    x, y = dm.splits["train"]
    assert x.shape == (240, 1, 64) and y.shape == (240, 2)
    assert dm.spec["input_shape"] == [1, 64] and dm.spec["target_names"] == ["frequency", "damping"]
    assert float(y[:, 0].min()) >= 2.0 and float(y[:, 0].max()) <= 20.0
    assert torch.equal(make(0).splits["test"][0], dm.splits["test"][0])
    assert not torch.equal(make(1).splits["test"][0], dm.splits["test"][0])
    assert len(dm.feature_names) == 64 and dm.feature_names[:2] == ["t00", "t01"]
