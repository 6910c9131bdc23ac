"""Data modules: splits, normalisation, batches cut by index, MNIST from IDX files."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
from torch.utils.data.dataloader import _SingleProcessDataLoaderIter

from src.data.components.batches import (
    BatchLoader,
    IndexBatchSampler,
    TensorSamples,
    tensor_loader,
)
from src.data.digits_datamodule import DigitsDataModule
from src.data.mnist_datamodule import MNIST_FILES, MNISTDataModule
from src.utils.errors import UserInputError


def test_digits_split_shapes_and_normalisation() -> None:
    dm = DigitsDataModule(batch_size=50)
    dm.setup()
    sizes = {name: len(x) for name, (x, _) in dm.splits.items()}
    assert sizes == {"train": 1077, "val": 360, "test": 360}
    x, y = dm.splits["train"]
    assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32
    assert abs(float(x.mean())) < 1e-5 and abs(float(x.std()) - 1) < 1e-4
    assert set(y.tolist()) == set(range(10))
    # the split depends on split_seed only: the training seed does not move it
    torch.manual_seed(999)
    again = DigitsDataModule()
    again.setup()
    assert torch.equal(again.splits["test"][1], dm.splits["test"][1])
    assert dm.spec == {"input_shape": [1, 8, 8], "num_classes": 10}


def test_digits_cache_holds_scikit_learns_digits(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    first = DigitsDataModule(data_dir=str(tmp_path))
    first.setup()
    cache = tmp_path / "digits" / "digits.npz"
    assert cache.is_file()
    again = DigitsDataModule(data_dir=str(tmp_path))  # from the cache
    x, y = again.load_samples()
    bunch = load_digits()
    assert torch.equal(y, torch.from_numpy(bunch.target))
    assert torch.equal(x, torch.from_numpy(bunch.images).unsqueeze(1))  # as stored
    assert torch.equal(
        again.from_raw(x), torch.from_numpy(bunch.images).float().div(16).unsqueeze(1)
    )
    cache.write_bytes(b"truncated")
    with pytest.raises(UserInputError, match="cannot be read.*Delete it"):
        DigitsDataModule(data_dir=str(tmp_path)).setup()
    assert cache.read_bytes() == b"truncated"  # left as it was


def test_split_must_fit_the_data() -> None:
    dm = DigitsDataModule(train_val_test_split=(1000, 100, 100))
    with pytest.raises(UserInputError, match="add up to 1797"):
        dm.setup()


def test_loader_order_depends_on_seed_and_epoch_only() -> None:
    x = torch.arange(100).float().unsqueeze(1)
    y = torch.arange(100)

    def epoch_batches(epoch: int, seed: int = 7) -> list[list[int]]:
        loader = tensor_loader((x, y), batch_size=32, shuffle=True, seed=seed)
        assert isinstance(loader, DataLoader)
        loader.batch_sampler.sampler.set_epoch(epoch)  # where Lightning calls it
        return [b[1].tolist() for b in loader]

    first = epoch_batches(0)
    assert [len(b) for b in first] == [32, 32, 32, 4]
    assert sorted(sum(first, [])) == list(range(100))  # every sample once
    assert epoch_batches(0) == first  # same seed and epoch: same batches
    assert epoch_batches(1) != first  # a new epoch: a new order
    assert epoch_batches(0, seed=8) != first
    assert len(tensor_loader((x, y), 32, drop_last=True)) == 3
    plain = [b[0] for b in tensor_loader((x, y), 40)]
    assert torch.equal(torch.cat(plain), x)
    # LHT's attribute: a split as a Dataset of (x, y) samples
    dm = DigitsDataModule()
    assert dm.data_train is None
    dm.setup()
    sample = dm.data_train[5]
    assert len(dm.data_train) == 1077 and len(dm.data_test) == 360
    assert torch.equal(sample[0], dm.splits["train"][0][5]) and int(sample[1]) < 10


def test_loader_serves_torchs_batches_without_its_profiler_range(monkeypatch) -> None:
    """The in-memory loader's iterator (batches.py: torch's, less the per-batch
    ``record_function``) gives what torch's own gives, leaves the random generators as
    it does, and keeps the range while a profiler runs."""
    x = torch.arange(50).float().unsqueeze(1)
    loader = tensor_loader((x, torch.arange(50)), batch_size=8, shuffle=True, seed=4)
    torch.manual_seed(0)
    ours = [b[1] for b in loader]
    ours_next = torch.rand(3)
    torch.manual_seed(0)
    torchs = [b[1] for b in _SingleProcessDataLoaderIter(loader)]
    assert torch.equal(torch.cat(ours), torch.cat(torchs)) and len(ours) == 7
    assert torch.equal(ours_next, torch.rand(3))  # the same seed draw at the start
    ranges = []
    real = torch.autograd.profiler.record_function
    monkeypatch.setattr(
        torch.autograd.profiler, "record_function", lambda name: ranges.append(name) or real(name)
    )
    assert len(list(tensor_loader((x,), batch_size=8))) == 7 and ranges == []
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        assert len(list(loader)) == 7
    assert len(ranges) >= 7  # torch's own iterator, a range per batch (and one at the stop)
    assert any(event.name.startswith("enumerate(DataLoader)") for event in prof.events())


def test_loader_calls_the_data_set_and_collate_fn_as_torchs_fetcher_does() -> None:
    """Batches cut by ``__getitems__`` go through the loader's own ``collate_fn``; a data
    set without ``__getitems__`` is fetched sample by sample: both as torch's iterator."""
    x, y = torch.arange(40).float().unsqueeze(1), torch.arange(40)
    loaders = [
        BatchLoader(TensorSamples(x, y), batch_size=8, collate_fn=lambda b: (b[0] * 2, b[1])),
        BatchLoader(TensorDataset(x, y), batch_size=8, shuffle=True),
    ]
    for loader in loaders:
        torch.manual_seed(1)
        ours = list(loader)
        torch.manual_seed(1)
        torchs = list(_SingleProcessDataLoaderIter(loader))
        assert len(ours) == len(torchs) == 5
        for (ox, oy), (tx, ty) in zip(ours, torchs, strict=True):
            assert torch.equal(ox, tx) and torch.equal(oy, ty)
    assert torch.equal(list(loaders[0])[1][0], 2 * x[8:16])  # collate_fn applied


def test_distributed_shards_are_disjoint_and_equal() -> None:
    """What Lightning does under DDP: a shuffling DistributedSampler put into our batch
    sampler; every rank gets the same number of batches, disjoint but for the padding."""
    shards = []
    for rank in range(3):
        sampler = DistributedSampler(range(100), num_replicas=3, rank=rank, seed=1)
        sampler.set_epoch(4)
        shards.append(torch.cat(list(IndexBatchSampler(sampler, 10, drop_last=False))))
    assert all(len(s) == 34 for s in shards)  # 100 padded to 102
    assert set(torch.cat(shards).tolist()) == set(range(100))


def test_mnist_from_idx_files(mnist_dir: Path) -> None:
    dm = MNISTDataModule(data_dir=str(mnist_dir), train_val_test_split=(1000, 200, 300))
    dm.prepare_data()
    dm.setup()
    x, y = dm.splits["train"]
    assert x.shape == (1000, 1, 28, 28)
    assert y.dtype == torch.long and int(y.max()) <= 9
    batch = next(iter(dm.val_dataloader()))
    assert batch[0].shape == (128, 1, 28, 28)


def test_mnist_reads_gzipped_files(mnist_dir: Path, tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        (raw / f"{name}.gz").write_bytes(
            gzip.compress((mnist_dir / "MNIST/raw" / name).read_bytes())
        )
    dm = MNISTDataModule(
        data_dir=str(tmp_path), train_val_test_split=(1000, 200, 300), download=False
    )
    dm.setup()
    assert len(dm.splits["test"][0]) == 300


def test_mnist_offline_without_files_names_them(tmp_path: Path, mnist_dir: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    shutil.copy(mnist_dir / "MNIST/raw" / MNIST_FILES[0], raw)
    dm = MNISTDataModule(data_dir=str(tmp_path), download=False)
    with pytest.raises(UserInputError) as error:
        dm.prepare_data()
    message = str(error.value)
    assert all(name in message for name in MNIST_FILES[1:])
    assert MNIST_FILES[0] + "," not in message  # the file that is there is not named missing
    assert sorted(p.name for p in raw.iterdir()) == [MNIST_FILES[0]]  # nothing written


def test_model_config_takes_its_numbers_from_the_data(tmp_path: Path) -> None:
    """LHT's habit: a plain instantiate of a composed model config works, and what is
    resolved (config tree, logged hyperparameters) holds the data's real numbers."""
    import hydra
    from omegaconf import OmegaConf

    from tests.conftest import compose_config

    cfg = compose_config("train.yaml", ["data.digits=[3,5,8]"], tmp_path)
    model = hydra.utils.instantiate(cfg.model)
    assert model.hparams.num_classes == 3
    logits = model(torch.zeros(4, 1, 8, 8))
    assert logits.shape == (4, 3)  # the net too was built for the three digits
    resolved = OmegaConf.to_container(cfg.model, resolve=True)
    assert resolved["net"]["input_shape"] == [1, 8, 8] and resolved["num_classes"] == 3
    # an override still wins over the data
    cfg = compose_config("train.yaml", ["model.net.lin1_size=7"], tmp_path)
    assert OmegaConf.to_container(cfg.model, resolve=True)["net"]["lin1_size"] == 7
    # a model the data cannot feed: one clear message
    cfg = compose_config("train.yaml", ["data=diabetes"], tmp_path)
    with pytest.raises(Exception) as error:
        hydra.utils.instantiate(cfg.model)
    from src.utils.errors import user_error_in

    message = str(user_error_in(error.value))
    assert "'num_classes'" in message and "DiabetesDataModule" in message
    assert "do not go together" in message
    # it names the models whose data keys the diabetes table provides: the regression ones
    assert "(model=cnn1d or model=regression_mlp)" in message


def test_mnist_damaged_idx_files_are_named(tmp_path: Path, mnist_dir: Path) -> None:
    """torchvision stops on a damaged IDX header with a bare AssertionError: the file is
    named instead, with what is wrong and what to do, and nothing is written."""
    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(mnist_dir / "MNIST" / "raw", raw)
    images = raw / "train-images-idx3-ubyte"
    good = images.read_bytes()

    def stops(*phrases: str) -> None:
        before = {p.name: p.read_bytes() for p in raw.iterdir()}
        with pytest.raises(UserInputError) as error:
            MNISTDataModule(data_dir=str(tmp_path), download=False).setup()
        for phrase in phrases:
            assert phrase in str(error.value), (phrase, str(error.value))
        assert {p.name: p.read_bytes() for p in raw.iterdir()} == before

    images.write_bytes(os.urandom(3000))
    stops(str(images), "not an IDX file", "header is not that of a 3-dimensional", "download")
    images.write_bytes(good[: len(good) // 2])
    stops("header promises [1200, 28, 28]", "the file has")
    labels = raw / "train-labels-idx1-ubyte"
    images.write_bytes(good)
    labels.write_bytes(b"\0\0\x08\x01" + (5).to_bytes(4, "big") + bytes(5))
    stops("1200 images but train-labels-idx1-ubyte 5 labels")


def test_loader_resumes_where_the_epoch_stopped_or_says_why_not() -> None:
    """The training loader's state (Lightning keeps it in checkpoints): the epoch goes
    on with the batches it had left; other batch settings mid-epoch are one message."""
    x, y = torch.arange(20.0).unsqueeze(1), torch.arange(20)
    loader = tensor_loader((x, y), batch_size=4, shuffle=True, seed=3)
    loader.batch_sampler.sampler.set_epoch(2)
    batches = iter(loader)
    seen = [next(batches)[1] for _ in range(2)]
    state = loader.state_dict()
    assert (state["epoch"], state["served"], state["batches"]) == (2, 2, 5)
    rest = [b[1] for b in batches]
    resumed = tensor_loader((x, y), batch_size=4, shuffle=True, seed=3)
    resumed.load_state_dict(state)
    resumed.batch_sampler.sampler.set_epoch(2)
    assert [b[1].tolist() for b in resumed] == [b.tolist() for b in rest]
    assert len(list(resumed)) == 5  # the next epoch is whole again
    assert sorted(torch.cat(seen + rest).tolist()) == list(range(20))
    other = tensor_loader((x, y), batch_size=5, shuffle=True, seed=3)
    with pytest.raises(UserInputError, match="part-way through an epoch of 5 batches of 4"):
        other.load_state_dict(state)
    later = tensor_loader((x, y), batch_size=4, shuffle=True, seed=3)
    later.load_state_dict(state)
    later.batch_sampler.sampler.set_epoch(3)  # a checkpoint of an earlier epoch: no skip
    assert len(list(later)) == 5


def test_a_failed_mnist_download_names_its_reason(tmp_path: Path, monkeypatch) -> None:
    """torchvision's error starts "Error downloading <file>:" and gives each mirror's
    reason on later lines: the message said "(Error downloading ...gz:)" and no reason."""
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError(
            "Error downloading train-images-idx3-ubyte.gz:\n"
            "Tried https://a/, got:\n<urlopen error [Errno -2] Name or service not known>\n"
            "Tried http://b/, got:\n<urlopen error [Errno -3] Temporary failure>\n"
        )

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    dm = MNISTDataModule(data_dir=str(tmp_path))
    with pytest.raises(UserInputError) as caught:
        dm.prepare_data()
    assert (
        "the download failed (Error downloading train-images-idx3-ubyte.gz: "
        "<urlopen error [Errno -3] Temporary failure>)"
    ) in str(caught.value)
