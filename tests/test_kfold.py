"""k-fold cross-validation: folds by index for every data module, the split saved in the
run directory, and the report of a multirun over the folds."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from src.data.components.folds import assign_folds
from src.data.diabetes_datamodule import DiabetesDataModule
from src.data.digits_datamodule import DigitsDataModule
from src.data.in_memory_datamodule import SPLITS, InMemoryDataModule
from src.data.mnist_datamodule import MNISTDataModule
from src.data.signals_datamodule import SignalsDataModule
from src.data.tabular_datamodule import TabularDataModule
from src.reports.cv_report import cv_report
from src.train import train
from src.utils.errors import UserInputError
from src.utils.run_metadata import SPLITS_FILE
from src.vimh.datamodule import VIMHDataModule
from tests.conftest import compose_config, run_cli, save_run_config, vimh_overrides

Factory = Callable[[int | None, int | None], InMemoryDataModule]


# -- the folds themselves ----------------------------------------------------------------


def digits(num_folds: int | None = None, fold: int | None = None, **kwargs) -> DigitsDataModule:
    dm = DigitsDataModule(num_folds=num_folds, fold=fold, **kwargs)
    dm.setup()
    return dm


def test_default_split_is_the_fixed_one() -> None:
    """num_folds=null: the split of every earlier version (a seeded permutation cut 1077/360/360)."""
    order = torch.randperm(1797, generator=torch.Generator().manual_seed(42))
    record = digits().split_record()
    assert [record[name] for name in SPLITS] == [p.tolist() for p in order.split([1077, 360, 360])]
    assert record["num_folds"] is None and record["fold"] is None


def test_folds_partition_the_pool_and_share_the_test_set() -> None:
    fixed_dm = digits()
    fixed = fixed_dm.split_record()
    pool = set(fixed["train"]) | set(fixed["val"])
    held_out = []
    for fold in range(5):
        dm = digits(5, fold)
        record = dm.split_record()
        assert record["test"] == fixed["test"]
        assert torch.equal(dm.splits["test"][1], fixed_dm.splits["test"][1])
        assert not set(record["train"]) & set(record["val"])
        assert set(record["train"]) | set(record["val"]) == pool
        held_out.append(set(record["val"]))
    assert sum(len(v) for v in held_out) == len(pool) == 1437
    assert set().union(*held_out) == pool
    assert sorted(len(v) for v in held_out) == [287, 287, 287, 288, 288]


def test_folds_are_stratified_by_class() -> None:
    labels_of = {}
    dm = digits()
    for name in ("train", "val"):
        for index, label in zip(dm.split_indices[name], dm.splits[name][1], strict=True):
            labels_of[int(index)] = int(label)
    pool = torch.tensor(list(labels_of.values()))
    pool_share = torch.bincount(pool, minlength=10) / len(pool)
    counts = []
    for fold in range(5):
        val = digits(5, fold).splits["val"][1]
        counts.append(torch.bincount(val, minlength=10))
        assert (counts[-1] / len(val) - pool_share).abs().max() < 0.005
    counts = torch.stack(counts)
    assert (counts.max(0).values - counts.min(0).values).max() <= 1  # each class dealt evenly
    # without strata the same dealing leaves the classes uneven
    plain = torch.stack(
        [torch.bincount(pool[assign_folds(len(pool), 5, 42) == f], minlength=10) for f in range(5)]
    )
    assert (plain.max(0).values - plain.min(0).values).max() > 1


def test_folds_are_reproducible_from_the_seed() -> None:
    first = digits(4, 2).split_record()
    torch.manual_seed(123)  # the training seed does not move the folds
    assert digits(4, 2).split_record() == first
    other = digits(4, 2, split_seed=7).split_record()
    assert set(other["val"]) != set(first["val"])


def test_normalisation_is_fitted_on_the_folds_training_part() -> None:
    dm = digits(3, 1)
    stored, _ = dm.load_samples()
    raw = dm.from_raw(stored)
    train = raw[dm.split_indices["train"]]
    assert float(dm.input_mean) == pytest.approx(float(train.mean()), abs=1e-6)
    assert float(dm.input_std) == pytest.approx(float(train.std()), abs=1e-6)
    pool = raw[torch.cat([dm.split_indices["train"], dm.split_indices["val"]])]
    assert abs(float(pool.mean()) - float(train.mean())) > 1e-4  # the check can tell them apart


@pytest.mark.parametrize(
    ("num_folds", "fold", "message"),
    [
        (None, 1, "data.fold=1 is set but data.num_folds is not"),
        (1, 0, "data.num_folds=1 cannot make k-fold cross-validation"),
        (5, 5, r"data.fold=5 must be one of the folds 0..4"),
        (5, -1, r"data.fold=-1 must be one of the folds 0..4"),
        (5, None, r"data.fold=None must be one of the folds 0..4"),
        ("3", 0, "data.num_folds=3 cannot make"),
        (2000, 0, "data.num_folds=2000 is more than the 1437 samples"),
        (200, 0, r"class \d has only 1\d\d samples there.*Use data.num_folds=1\d\d or fewer"),
    ],
)
def test_impossible_fold_settings(num_folds, fold, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        digits(num_folds, fold)


# -- every data module -----------------------------------------------------------------


def label_table(dm: InMemoryDataModule) -> torch.Tensor:
    """Every sample's labels, at its index in the data set (from a set-up module)."""
    size = max(int(dm.split_indices[name].max()) for name in SPLITS) + 1
    y = dm.splits["train"][1]
    table = torch.zeros((size, *y.shape[1:]), dtype=y.dtype)
    for name in SPLITS:
        table[dm.split_indices[name]] = dm.splits[name][1]
    return table


def check_folds(make: Factory, num_folds: int = 3, standardised: bool = True) -> None:
    """The folds of ``make`` partition its fixed split's train + val, keep its test split,
    index the right samples, and (``standardised``) are normalised with their training
    part's statistics."""
    fixed = make(None, None)
    fixed.setup()
    labels = label_table(fixed)
    pool = torch.cat([fixed.split_indices["train"], fixed.split_indices["val"]])
    held_out = []
    for fold in range(num_folds):
        dm = make(num_folds, fold)
        dm.setup()
        record = dm.split_record()
        assert record["num_folds"] == num_folds and record["fold"] == fold
        assert record["indices_into"] == fixed.indexed
        assert torch.equal(dm.split_indices["test"], fixed.split_indices["test"])
        for name in SPLITS:
            assert record["sizes"][name] == len(dm.splits[name][0]) == len(record[name])
            assert torch.equal(dm.splits[name][1], labels[dm.split_indices[name]]), name
        assert sorted(record["train"] + record["val"]) == sorted(pool.tolist())
        held_out += record["val"]
        if not standardised:
            continue
        x = dm.splits["train"][0]
        channels = x.transpose(0, 1).flatten(1)  # per-channel for regression, overall otherwise
        assert float(channels.mean(1).abs().max()) < 1e-4 or abs(float(x.mean())) < 1e-4
        assert float(dm.splits["val"][0].mean()) != pytest.approx(0.0, abs=1e-5)
    assert sorted(held_out) == sorted(pool.tolist())  # each pool sample held out once


def make_table(rows: int = 150) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(10, 2, rows), "b": rng.uniform(0, 50, rows)})
    frame["y"] = 2 * frame["a"] - frame["b"] + rng.normal(0, 0.1, rows)
    frame["part"] = rng.choice(["train", "val", "test"], rows, p=[0.6, 0.2, 0.2])
    return frame


@pytest.fixture(scope="module")
def vimh_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 200-sample simple_saw VIMH data set (160 train, 40 test), made through data=vimh."""
    parent = tmp_path_factory.mktemp("vimh")
    cfg = compose_config(
        "train.yaml",
        ["data=vimh", *vimh_overrides(parent, 200)],
        parent,
    )
    hydra.utils.instantiate(cfg.data).prepare_data()
    return Path(cfg.data.data_dir)


def test_digits_with_a_subset_of_digits() -> None:
    """The folds are dealt from all ten digits, then the selection keeps three (the
    normalisation too is fitted before the selection, on the fold's ten digits)."""

    def make(k: int | None, f: int | None) -> DigitsDataModule:
        return DigitsDataModule(digits=[3, 5, 8], num_folds=k, fold=f)

    check_folds(make, standardised=False)
    dm = make(3, 1)
    dm.setup()
    assert torch.unique(dm.splits["val"][1]).tolist() == [0, 1, 2]
    assert 140 < len(dm.splits["val"][0]) < 220  # a third of the ~540 pool samples of 3, 5, 8


def test_mnist(mnist_dir: Path) -> None:
    def make(k: int | None, f: int | None) -> MNISTDataModule:
        return MNISTDataModule(
            str(mnist_dir), (1000, 200, 300), download=False, num_folds=k, fold=f
        )

    check_folds(make)
    assert "MNIST" in make(None, None).split_record()["indices_into"]


def test_diabetes_scaling_fitted_on_the_fold(tmp_path: Path) -> None:
    def make(k: int | None, f: int | None) -> DiabetesDataModule:
        return DiabetesDataModule(data_dir=str(tmp_path), num_folds=k, fold=f)

    check_folds(make, num_folds=4)
    dm = make(4, 3)
    dm.setup()
    raw, targets = dm.load_samples()
    train = dm.split_indices["train"]
    assert torch.allclose(dm.scaling["feature_mean"], raw[train].mean(0), atol=1e-4)
    assert torch.allclose(dm.scaling["target_mean"], targets[train].mean(0), atol=1e-3)
    assert dm.fold_strata(targets) is None  # regression targets: plain shuffled folds


@pytest.mark.parametrize("layout", ["random", "split_column", "one_file_per_split"])
def test_tabular(layout: str, tmp_path: Path) -> None:
    table = make_table()
    settings: dict = {"target_columns": ["y"], "feature_columns": ["a", "b"]}
    if layout == "one_file_per_split":
        path: str | dict = {}
        for name in SPLITS:
            table[table["part"] == name].to_csv(tmp_path / f"{name}.csv", index=False)
            path[name] = str(tmp_path / f"{name}.csv")
    else:
        table.to_csv(tmp_path / "rows.csv", index=False)
        path = str(tmp_path / "rows.csv")
        if layout == "split_column":
            settings["split_column"] = "part"

    def make(k: int | None, f: int | None) -> TabularDataModule:
        return TabularDataModule(path=path, num_folds=k, fold=f, **settings)

    check_folds(make)
    if layout == "split_column":  # the indices are the file's row numbers
        dm = make(3, 0)
        dm.setup()
        rows = table.iloc[dm.split_indices["val"].numpy()]
        assert set(rows["part"]) <= {"train", "val"}
        assert np.allclose(rows["y"].to_numpy(), dm.splits["val"][1][:, 0].numpy(), atol=1e-4)


def test_signals() -> None:
    check_folds(
        lambda k, f: SignalsDataModule(num_samples=300, length=32, num_folds=k, fold=f),
        num_folds=5,
    )


def test_vimh_folds_over_the_train_file(vimh_dir: Path) -> None:
    check_folds(lambda k, f: VIMHDataModule(str(vimh_dir), num_folds=k, fold=f), num_folds=4)
    dm = VIMHDataModule(str(vimh_dir), num_folds=4, fold=0)
    dm.setup()
    assert len(dm.splits["val"][0]) == 40 and len(dm.splits["test"][0]) == 40
    assert dm.split_indices["test"].tolist() == list(range(160, 200))  # the test file
    assert dm.fold_strata(dm.splits["train"][1]) is None  # one label per parameter: not stratified
    levels = dm.splits["train"][2]
    assert torch.allclose(levels.mean(0), torch.zeros(2), atol=1e-4)  # fitted on the fold


# -- runs and the report ---------------------------------------------------------------


def fold_job(sweep: Path, job: int, *overrides: str, epochs: int = 1) -> dict:
    """Train one job of a multirun in this process, leaving what Hydra's launcher leaves
    (``.hydra/config.yaml`` and ``overrides.yaml``) in ``<sweep>/<job>``."""
    job_dir = sweep / str(job)
    overrides = (f"trainer.max_epochs={epochs}", *overrides)
    cfg = compose_config("train.yaml", list(overrides), job_dir)
    save_run_config(cfg, job_dir)
    OmegaConf.save(OmegaConf.create(list(overrides)), job_dir / ".hydra" / "overrides.yaml")
    metrics, _ = train(cfg)
    return {k: float(v) for k, v in metrics.items()}


def job_metrics(job_dir: Path) -> dict[str, float]:
    return json.loads((job_dir / "run_status.json").read_text())["metrics"]


@pytest.fixture(scope="module")
def three_folds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A multirun over the 3 folds of digits, one epoch each."""
    sweep = tmp_path_factory.mktemp("folds")
    for fold in range(3):
        fold_job(sweep, fold, "data.num_folds=3", f"data.fold={fold}")
    return sweep


def test_a_fold_run_saves_its_split(three_folds: Path) -> None:
    records = [json.loads((three_folds / str(j) / SPLITS_FILE).read_text()) for j in range(3)]
    for fold, record in enumerate(records):
        assert (record["num_folds"], record["fold"], record["split_seed"]) == (3, fold, 42)
        assert record == digits(3, fold).split_record()  # the run's data module, reproduced
        assert record["test"] == records[0]["test"]
        assert job_metrics(three_folds / str(fold))["test/acc"] > 0.5  # chance is 0.1
    assert sorted(sum((r["val"] for r in records), [])) == sorted(
        records[0]["train"] + records[0]["val"]
    )


def test_cv_report_gives_mean_and_std_of_the_folds(three_folds: Path) -> None:
    report = cv_report(three_folds)
    (result,) = report["cross_validations"]
    assert result["num_folds"] == 3 and [f["fold"] for f in result["folds"]] == [0, 1, 2]
    assert {"test/acc", "test/loss", "val/acc_best"} <= set(report["metrics"])
    for metric in report["metrics"]:
        values = [job_metrics(three_folds / str(j))[metric] for j in range(3)]
        assert result["mean"][metric] == pytest.approx(np.mean(values), abs=1e-6)
        assert result["std"][metric] == pytest.approx(np.std(values, ddof=1), abs=1e-6)
    assert result["mean"]["test/acc"] > 0.8
    saved = json.loads((three_folds / "cv_report.json").read_text())
    assert saved == report
    rows = pd.read_csv(three_folds / "cv_report.csv")
    assert rows["fold"].astype(str).tolist() == ["0", "1", "2", "mean", "std"]
    assert rows.loc[3, "test/acc"] == pytest.approx(result["mean"]["test/acc"])


def test_cv_report_makes_one_cross_validation_per_swept_setting(tmp_path: Path) -> None:
    """`-m data.num_folds=2 data.fold=0,1 model.optimizer.lr=0.0003,0.01`: two reports."""
    job = 0
    for lr in (0.0003, 0.01):
        for fold in range(2):
            fold_job(
                tmp_path, job, "data.num_folds=2", f"data.fold={fold}", f"model.optimizer.lr={lr}"
            )
            job += 1
    report = cv_report(tmp_path)
    settings = [result["setting"] for result in report["cross_validations"]]
    assert settings == [{"model.optimizer.lr": 0.0003}, {"model.optimizer.lr": 0.01}]
    for result, first in zip(report["cross_validations"], (0, 2), strict=True):
        values = [job_metrics(tmp_path / str(j))["val/acc_best"] for j in (first, first + 1)]
        assert result["mean"]["val/acc_best"] == pytest.approx(np.mean(values), abs=1e-6)
    slow, fast = (r["mean"]["test/acc"] for r in report["cross_validations"])
    assert fast > slow  # one epoch: the larger learning rate gets further
    # a fold missing from one setting: named as on the command line (it read
    # "with {'model.optimizer.lr': np.float64(0.01)}")
    partial = tmp_path / "partial"
    for job in (0, 1, 2):
        shutil.copytree(tmp_path / str(job), partial / str(job))
    with pytest.raises(UserInputError) as refused:
        cv_report(partial)
    assert (
        f"{partial} with model.optimizer.lr=0.01 has folds [0] of data.num_folds=2: missing [1]"
        in str(refused.value)
    )


def test_cv_report_refuses_an_incomplete_or_failed_cross_validation(
    three_folds: Path, tmp_path: Path
) -> None:
    with pytest.raises(UserInputError, match="holds no jobs"):
        cv_report(tmp_path)
    with pytest.raises(UserInputError, match="is not a directory: give the directory of a"):
        cv_report(tmp_path / "no_such_multirun")
    partial = tmp_path / "partial"
    for job in (0, 2):
        shutil.copytree(three_folds / str(job), partial / str(job))
    with pytest.raises(UserInputError, match=r"folds \[0, 2\] of data.num_folds=3: missing \[1\]"):
        cv_report(partial)
    # a fold job that failed (here: a fold that does not exist) is named with its error
    with pytest.raises(UserInputError):
        fold_job(partial, 1, "data.num_folds=3", "data.fold=3")
    with pytest.raises(
        UserInputError, match=r"did not finish.*/1 \(failed: UserInputError: data.fold=3"
    ):
        cv_report(partial)
    assert not (partial / "cv_report.json").exists()
    plain = tmp_path / "plain"
    fold_job(plain, 0, "debug=fdr")
    with pytest.raises(UserInputError, match="not folds of a cross-validation"):
        cv_report(plain)


@pytest.mark.slow
def test_multirun_over_the_folds_then_make_cv_report(tmp_path: Path) -> None:
    """The commands of the README: `-m data.num_folds=3 'data.fold=range(3)'`, then the report."""
    sweep = tmp_path / "sweep"
    done = run_cli(
        "train.py",
        "-m",
        "data.num_folds=3",
        "data.fold=range(3)",
        "trainer.max_epochs=2",
        f"hydra.sweep.dir={sweep}",
        "extras.print_config=false",
        "callbacks.rich_progress_bar=null",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    done = run_cli("reports/cv_report.py", f"multirun_dir={sweep}", f"paths.log_dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "mean" in done.stdout and "std" in done.stdout
    report = json.loads((sweep / "cv_report.json").read_text())
    (result,) = report["cross_validations"]
    accuracies = [job_metrics(sweep / str(job))["test/acc"] for job in range(3)]
    assert min(accuracies) > 0.8  # every fold's model learned (chance: 0.1)
    assert result["mean"]["test/acc"] == pytest.approx(np.mean(accuracies), abs=1e-6)
    assert result["std"]["test/acc"] == pytest.approx(np.std(accuracies, ddof=1), abs=1e-6)
    held_out = [json.loads((sweep / str(j) / SPLITS_FILE).read_text())["val"] for j in range(3)]
    assert len(set(sum(held_out, []))) == sum(map(len, held_out)) == 1437
    missing = run_cli(
        "reports/cv_report.py", f"multirun_dir={tmp_path / 'none'}", f"paths.log_dir={tmp_path}"
    )
    assert missing.returncode == 1 and "is not a directory" in missing.stderr
