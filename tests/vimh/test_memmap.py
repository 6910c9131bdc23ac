"""data.in_memory=false for VIMH: the record files read in place, batch by batch, give the
splits, normalisation and batches of the in-memory path; bad files stop with a message."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import torch

from src.utils.errors import UserInputError
from src.vimh.datamodule import VIMHDataModule
from tests.vimh.test_datamodule import SMALL_NAME, vimh_config


@pytest.fixture(scope="module")
def vimh_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    parent = tmp_path_factory.mktemp("vimh_memmap")
    cfg = vimh_config(parent, "data.generate=true", "data.generation.size=200",
                      f"data.data_dir={parent / SMALL_NAME}")  # fmt: skip
    hydra.utils.instantiate(cfg.data).prepare_data()
    return parent / SMALL_NAME


def both(directory: Path, **kwargs) -> tuple[VIMHDataModule, VIMHDataModule]:
    kwargs = {"batch_size": 32, "shuffle_seed": 7, **kwargs}
    memory = VIMHDataModule(str(directory), **kwargs)
    mapped = VIMHDataModule(str(directory), in_memory=False, **kwargs)
    memory.setup(), mapped.setup()
    return memory, mapped


def assert_same_batches(a, b) -> int:
    count = 0
    for one, other in zip(a, b, strict=True):
        x, y, levels = one
        assert torch.allclose(x, other[0], atol=1e-5) and other[0].dtype == torch.float32
        assert torch.equal(y, other[1]) and other[1].dtype == torch.int64
        assert torch.allclose(levels, other[2], atol=1e-6)
        count += 1
    return count


def test_memmap_batches_equal_the_in_memory_ones(vimh_dir: Path) -> None:
    memory, mapped = both(vimh_dir)
    assert memory.split_record() == mapped.split_record()
    assert mapped.spec == memory.spec
    for epoch in (0, 1):  # the shuffled order of two epochs
        loaders = [dm.train_dataloader() for dm in (memory, mapped)]
        for loader in loaders:
            loader.batch_sampler.sampler.set_epoch(epoch)
        assert assert_same_batches(*loaders) == 5  # 144 train samples
    assert assert_same_batches(memory.val_dataloader(), mapped.val_dataloader()) == 1
    assert assert_same_batches(memory.test_dataloader(), mapped.test_dataloader()) == 2
    x, y, levels = mapped.data_test[3]
    assert torch.equal(y, memory.data_test[3][1]) and x.shape == (1, 32, 32)


def test_memmap_batches_read_in_workers_and_folds(vimh_dir: Path) -> None:
    memory, mapped = both(vimh_dir, num_folds=3, fold=1, num_workers=2, persistent_workers=False)
    assert memory.split_record() == mapped.split_record()
    loader = mapped.train_dataloader()
    assert loader.num_workers == 2
    assert assert_same_batches(memory.train_dataloader(), loader) == 4  # two thirds of the 160


def test_corrupt_files_stop_with_the_record_named(vimh_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / SMALL_NAME
    copy.mkdir()
    for name in ("train", "test", "vimh_dataset_info.json"):
        (copy / name).write_bytes((vimh_dir / name).read_bytes())
    data = bytearray((copy / "train").read_bytes())
    record = len(data) // 160
    data[5 * record] = 99  # record 5's height
    (copy / "train").write_bytes(bytes(data))
    with pytest.raises(UserInputError, match="record 5 has an inconsistent header"):
        VIMHDataModule(str(copy), in_memory=False).setup()
    (copy / "train").write_bytes(bytes(data[: 10 * record + 7]))
    with pytest.raises(UserInputError, match="record 10 is truncated"):
        VIMHDataModule(str(copy), in_memory=False).setup()


def test_training_reads_the_same_from_memmap(vimh_dir: Path, tmp_path: Path) -> None:
    """Two epochs of vimh_cnn_16k: the memmap run's metrics are the in-memory run's."""
    from src.train import train

    results = []
    for in_memory in ("true", "false"):
        cfg = vimh_config(
            tmp_path / in_memory, f"data.data_dir={vimh_dir}", "data.generate=false",
            f"data.in_memory={in_memory}", "model=vimh_cnn_16k", "trainer.max_epochs=2",
            "logger=none", "callbacks=none", "data.shuffle_seed=3",
        )  # fmt: skip
        metrics, objects = train(cfg)
        assert objects["datamodule"].in_memory is (in_memory == "true")
        results.append({k: float(v) for k, v in metrics.items()})
    assert results[0].keys() == results[1].keys() and "test/loss" in results[0]
    for key, value in results[0].items():
        assert results[1][key] == pytest.approx(value, rel=1e-3, abs=1e-4), key
