"""data=tabular data.in_memory=false: the table read once in parts into a float32 cache
under the project's data folder, batches cut from it in place, give the splits,
standardisation, batches and training results of the in-memory path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from src.data.components import table_cache
from src.data.tabular_datamodule import TabularDataModule
from src.train import train
from src.utils.errors import UserInputError
from tests.conftest import compose_config
from tests.test_tabular_datamodule import make_table, write


def both(path, cache: Path, **kwargs) -> tuple[TabularDataModule, TabularDataModule]:
    kwargs = {"target_columns": ["y", "z"], "batch_size": 16, "shuffle_seed": 5, **kwargs}
    memory = TabularDataModule(path=path, **kwargs)
    mapped = TabularDataModule(path=path, in_memory=False, cache_dir=str(cache), **kwargs)
    memory.setup(), mapped.setup()
    return memory, mapped


def assert_same_batches(a, b) -> int:
    count = 0
    for (x, y), (mx, my) in zip(a, b, strict=True):
        assert mx.dtype == my.dtype == torch.float32
        assert torch.allclose(x, mx, atol=1e-5) and torch.equal(y, my)
        count += 1
    return count


def assert_same(memory: TabularDataModule, mapped: TabularDataModule, train_batches: int) -> None:
    assert mapped.split_record() == memory.split_record()
    spec, expected = mapped.spec, memory.spec
    for key in ("target_mean", "target_std"):
        assert spec.pop(key) == pytest.approx(expected.pop(key), rel=1e-5)
    assert spec == expected
    for key in ("feature_mean", "feature_std"):
        assert torch.allclose(mapped.scaling[key], memory.scaling[key], rtol=1e-5)
    for epoch in (0, 1):  # two epochs' shuffled order
        loaders = [dm.train_dataloader() for dm in (memory, mapped)]
        for loader in loaders:
            loader.batch_sampler.sampler.set_epoch(epoch)
        assert assert_same_batches(*loaders) == train_batches
    assert assert_same_batches(memory.val_dataloader(), mapped.val_dataloader()) > 0
    assert assert_same_batches(memory.test_dataloader(), mapped.test_dataloader()) > 0


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_cached_batches_equal_the_in_memory_ones(
    suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(table_cache, "CHUNK_ROWS", 64)  # the table read in 4 parts
    table = make_table(rows=230)
    memory, mapped = both(write(table, tmp_path / f"t{suffix}"), tmp_path / "cache")
    assert_same(memory, mapped, train_batches=11)  # 161 training rows
    assert len(list((tmp_path / "cache").glob("t-*.f32"))) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", f"t{suffix}"]  # nothing beside


def test_split_column_files_per_split_folds_and_workers(tmp_path: Path) -> None:
    table = make_table(rows=150, seed=1)
    table["part"] = np.array(["train", "val", "test"])[np.arange(150) % 5 % 3]
    memory, mapped = both(write(table, tmp_path / "s.csv"), tmp_path / "c", split_column="part")
    assert_same(memory, mapped, train_batches=4)  # 60 rows
    files = {n: write(make_table(40 + 10 * i, seed=i), tmp_path / f"{n}.csv")
             for i, n in enumerate(("train", "val", "test"))}  # fmt: skip
    memory, mapped = both({k: str(v) for k, v in files.items()}, tmp_path / "c")
    assert_same(memory, mapped, train_batches=3)
    memory, mapped = both(tmp_path / "s.csv", tmp_path / "c", num_folds=3, fold=2, num_workers=2,
                          feature_columns=["a", "c"])  # fmt: skip
    assert_same(memory, mapped, train_batches=6)  # two thirds of the 127 train + val rows


def test_the_cache_is_reused_and_follows_the_file(tmp_path: Path) -> None:
    path = write(make_table(rows=100), tmp_path / "t.csv")
    both(path, tmp_path / "c")
    (cached,) = (tmp_path / "c").glob("*.f32")
    stamp = cached.stat().st_mtime_ns
    both(path, tmp_path / "c")  # the same file and settings: the cache as it is
    assert cached.stat().st_mtime_ns == stamp and len(list((tmp_path / "c").glob("*.f32"))) == 1
    write(make_table(rows=120), path)  # the file changed: another cache, other rows
    memory, mapped = both(path, tmp_path / "c")
    assert len(list((tmp_path / "c").glob("*.f32"))) == 2
    assert len(mapped.data_train) == len(memory.data_train) == 84


def test_bad_rows_are_named_with_their_file_row(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(table_cache, "CHUNK_ROWS", 50)
    table = make_table(rows=120)
    table.loc[[7, 103], "b"] = np.nan  # in the first and the third part
    path = write(table, tmp_path / "t.csv")
    with pytest.raises(UserInputError, match=r"'b' in 2 rows \(rows 8, 104\)"):
        both(path, tmp_path / "c")
    assert not list((tmp_path / "c").glob("*"))  # no partial cache left
    memory, mapped = both(path, tmp_path / "c", drop_na=True)
    assert mapped.split_record() == memory.split_record()
    assert len(mapped.data_train) + len(mapped.data_val) + len(mapped.data_test) == 118


def test_training_from_the_cache_learns_what_memory_learns(tmp_path: Path) -> None:
    path = write(make_table(rows=600, seed=3), tmp_path / "t.parquet")
    common = ["data=tabular", f"data.path={path}", "data.target_columns=[y,z]",
              "model=regression_mlp", "trainer.max_epochs=3", "logger=none", "seed=4",
              "trainer.deterministic=true", f"data.cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    results = []
    for in_memory in ("true", "false"):
        cfg = compose_config("train.yaml", [*common, f"data.in_memory={in_memory}"],
                             tmp_path / in_memory)  # fmt: skip
        metrics, _ = train(cfg)
        results.append({k: float(v) for k, v in metrics.items() if k.startswith("test/")})
    assert results[0]["test/r2"] > 0.5  # it learnt something
    # the statistics differ in the last float32 bit (in memory: torch's float32 mean; the
    # cache: float64 sums), which three epochs of Adam grow to about 0.3%; the batches
    # themselves are checked to 1e-5 above
    assert results[1] == pytest.approx(results[0], rel=1e-2)
    saved = torch.load(next((tmp_path / "false" / "checkpoints").glob("epoch_*.ckpt")),
                       weights_only=True)  # fmt: skip
    assert saved["TabularDataModule"]["feature_names"] == ["a", "b", "c"]
    assert len(list((tmp_path / "cache").glob("*.f32"))) == 1  # testing (state restored) reused it


def test_a_missing_table_is_the_in_memory_message(tmp_path: Path) -> None:
    dm = TabularDataModule(path=str(tmp_path / "none.csv"), target_columns="y", in_memory=False,
                           cache_dir=str(tmp_path / "c"))  # fmt: skip
    with pytest.raises(UserInputError, match="none.csv does not exist"):
        dm.setup()
    assert not (tmp_path / "c").exists()


def test_pandas_reads_the_cache_values_back(tmp_path: Path) -> None:
    table = make_table(rows=70)
    path = write(table, tmp_path / "t.csv")
    _, mapped = both(path, tmp_path / "c")
    cache = mapped.datasets["train"].cache
    values = cache.read(np.arange(70))
    expected = pd.read_csv(path)[["a", "b", "c", "y", "z"]].to_numpy(np.float32)
    assert np.array_equal(values, expected)
