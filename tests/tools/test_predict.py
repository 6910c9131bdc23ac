"""predict.py: a trained regression run applied to new rows, in the targets' units, with
the checkpoint's own scaling; and every kind of bad input as one clear message."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

from src.data.diabetes_datamodule import diabetes_csv
from src.tools.predict import predict
from src.utils.errors import UserInputError
from tests.conftest import compose_config, run_cli
from tests.test_cli import QUIET, run_directory, test_metrics

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


@pytest.fixture(scope="module")
def diabetes_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, float]]:
    """A CLI training run of diabetes_mlp on a copy of the table whose `split` column
    says which rows are the test set. Returns (run dir, table, logged test metrics)."""
    work = tmp_path_factory.mktemp("diabetes")
    table = pd.read_csv(io.StringIO(diabetes_csv()))
    order = np.random.default_rng(0).permutation(len(table))
    table["split"] = "train"
    table.loc[order[:66], "split"] = "val"
    table.loc[order[66:132], "split"] = "test"
    path = work / "diabetes_split.csv"
    table.to_csv(path, index=False)
    done = run_cli(
        "train.py",
        "experiment=diabetes_mlp",
        "data=tabular",
        f"data.path={path}",
        "data.target_columns=[progression]",
        "data.split_column=split",
        f"paths.log_dir={work / 'logs'}",
        "callbacks.rich_progress_bar=null",
        *QUIET,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "data/ridge_r2=" in done.stdout + done.stderr  # the yardstick is printed
    return run_directory(done.stdout), path, test_metrics(done.stdout)


def predict_in_process(tmp_path: Path, *overrides: str) -> pd.DataFrame:
    cfg = compose_config("predict.yaml", list(overrides), tmp_path)
    _, objects = predict(cfg)
    return objects["predictions"]


def test_predictions_on_the_test_rows_match_the_logged_test_metrics(
    diabetes_run, tmp_path: Path
) -> None:
    run_dir, table, logged = diabetes_run
    rows = tmp_path / "test_rows.csv"
    pd.read_csv(table).query("split == 'test'").to_csv(rows, index=False)
    done = run_cli("tools/predict.py", f"run_dir={run_dir}", f"input={rows}", *QUIET)
    assert done.returncode == 0, done.stderr[-3000:]
    written = tmp_path / "test_rows_predictions.csv"  # beside the input, by default
    assert f"Wrote 66 rows with predictions (predicted_...) to {written}" in done.stdout
    result = pd.read_csv(written)
    assert list(result.columns) == [*FEATURES, "progression", "split", "predicted_progression"]
    truth, predicted = result["progression"], result["predicted_progression"]
    assert r2_score(truth, predicted) == pytest.approx(logged["test/r2"], abs=1e-4)
    assert mean_absolute_error(truth, predicted) == pytest.approx(logged["test/mae"], abs=1e-3)
    assert root_mean_squared_error(truth, predicted) == pytest.approx(logged["test/rmse"], abs=1e-3)


def test_one_row_from_features_uses_the_checkpoints_scaling(diabetes_run, tmp_path: Path) -> None:
    run_dir, table, _ = diabetes_run
    first = pd.read_csv(table).iloc[[0]]
    values = first[FEATURES].iloc[0].tolist()
    from_table = predict_in_process(
        tmp_path / "a", f"run_dir={run_dir}", f"input={write(first, tmp_path / 'one.csv')}"
    )
    table.rename(table.with_suffix(".moved"))  # the training data are not needed
    try:
        one = predict_in_process(tmp_path / "b", f"run_dir={run_dir}", f"+features={values}")
    finally:
        table.with_suffix(".moved").rename(table)
    assert one["predicted_progression"].iloc[0] == pytest.approx(
        from_table["predicted_progression"].iloc[0], rel=1e-6
    )
    assert 25 <= one["predicted_progression"].iloc[0] <= 346  # the target's range


def write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_output_and_overwrite(diabetes_run, tmp_path: Path) -> None:
    run_dir, table, _ = diabetes_run
    rows = write(pd.read_csv(table).head(5), tmp_path / "rows.csv")
    output = tmp_path / "out" / "p.csv"
    predict_in_process(tmp_path / "a", f"run_dir={run_dir}", f"input={rows}", f"output={output}")
    assert len(pd.read_csv(output)) == 5
    output.write_text("mine")
    with pytest.raises(UserInputError, match="exists, and predictions are not written over"):
        predict_in_process(
            tmp_path / "b", f"run_dir={run_dir}", f"input={rows}", f"output={output}"
        )
    assert output.read_text() == "mine"
    predict_in_process(
        tmp_path / "c", f"run_dir={run_dir}", f"input={rows}", f"output={output}", "overwrite=true"
    )
    assert len(pd.read_csv(output)) == 5
    with pytest.raises(UserInputError, match="is the input file"):
        predict_in_process(
            tmp_path / "d",
            f"run_dir={run_dir}",
            f"input={rows}",
            f"output={rows}",
            "overwrite=true",
        )


def test_rows_that_do_not_fit_the_model(diabetes_run, tmp_path: Path) -> None:
    run_dir, table, _ = diabetes_run
    frame = pd.read_csv(table).head(3)
    bad_columns = write(frame.rename(columns={"bmi": "BMI"}), tmp_path / "cols.csv")
    with pytest.raises(UserInputError) as error:
        predict_in_process(tmp_path / "a", f"run_dir={run_dir}", f"input={bad_columns}")
    assert "no column 'bmi' (did you mean 'BMI'?)" in str(error.value)
    assert "The model takes these features: age, sex, bmi" in str(error.value)
    with pytest.raises(UserInputError, match="features= has 9 values, but the model takes 10"):
        predict_in_process(tmp_path / "b", f"run_dir={run_dir}", f"+features={list(range(9))}")
    frame.loc[1, "s3"] = np.nan
    with pytest.raises(UserInputError, match=r"column 's3' in 1 rows \(rows 2\)"):
        predict_in_process(
            tmp_path / "c", f"run_dir={run_dir}", f"input={write(frame, tmp_path / 'na.csv')}"
        )
    with pytest.raises(UserInputError, match="does not exist"):
        predict_in_process(tmp_path / "d", f"run_dir={run_dir}", f"input={tmp_path / 'none.csv'}")
    with pytest.raises(UserInputError, match=r"input=<table> or \+features"):
        predict_in_process(tmp_path / "e", f"run_dir={run_dir}")


def test_checkpoint_of_other_data_or_model(diabetes_run, tmp_path: Path) -> None:
    run_dir, _, _ = diabetes_run
    best = next((run_dir / "checkpoints").glob("epoch_*.ckpt"))
    features = f"+features={list(range(10))}"
    with pytest.raises(UserInputError, match="holds no scaling of SignalsDataModule"):
        predict_in_process(
            tmp_path / "a", f"ckpt_path={best}", "data=signals", "model=cnn1d", features
        )
    with pytest.raises(UserInputError, match="another architecture"):
        predict_in_process(
            tmp_path / "b",
            f"ckpt_path={best}",
            "data=tabular",
            f"data.path={tmp_path / 'unused.csv'}",
            "data.target_columns=[progression]",
            "model.net.hidden_sizes=[8,8]",
            features,
        )
    # digits runs are predicted too (predict_classes): the checkpoint does not fit mlp
    with pytest.raises(UserInputError, match="another architecture"):
        predict_in_process(
            tmp_path / "c", f"ckpt_path={best}", "data=digits", "model=mlp", features
        )


def test_the_progress_bar_of_one_batch_shows_its_rate(diabetes_run, tmp_path: Path) -> None:
    """A prediction of one batch (a row, a small table held in memory) showed `1/1 ...
    0.00it/s`: rich measures a speed from two updates or more, and Lightning's column
    printed 0.00 without one."""
    run_dir, _, _ = diabetes_run
    row = [50, 1, 25, 90, 180, 100, 50, 4, 4.5, 90]
    done = run_cli(
        "tools/predict.py", f"run_dir={run_dir}", f"+features={row}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    bar = [line for line in done.stdout.splitlines() if line.startswith("Predicting")]
    assert bar and re.search(r"1/1 .* \d+\.\d\dit/s", bar[-1]), done.stdout[-2000:]
    assert "0.00it/s" not in done.stdout
