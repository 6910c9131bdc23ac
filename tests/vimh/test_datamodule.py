"""The VIMH data module: splits, batches, levels, heads from the metadata, generation on
demand, and a clear message for a missing data set."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from src.models.components.head_specs import label_classes, label_values
from src.utils.errors import UserInputError
from src.utils.instantiators import fill_from_data
from src.vimh.datamodule import VIMHDataModule
from src.vimh.format import Records, read_dataset
from tests.conftest import compose_config

SMALL_NAME = "vimh-32x32x1_8000Hz_1p0s_200dss_simple_saw_2p"


def vimh_config(tmp_path: Path, *overrides: str):
    return compose_config(
        "train.yaml", ["data=vimh", f"paths.data_dir={tmp_path}", *overrides], tmp_path
    )


@pytest.fixture(scope="module")
def vimh_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 200-sample simple_saw data set (160 train, 40 test), made through data=vimh."""
    parent = tmp_path_factory.mktemp("vimh")
    cfg = vimh_config(
        parent,
        "data.generate=true",
        "data.generation.size=200",
        f"data.data_dir={parent / SMALL_NAME}",
    )
    hydra.utils.instantiate(cfg.data).prepare_data()
    return parent / SMALL_NAME


def files(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(directory.iterdir())}


def samples(split: tuple[torch.Tensor, ...], dm: VIMHDataModule) -> Counter[bytes]:
    """Each sample's original image and label bytes, counted (equal notes give equal images)."""
    x, y, _ = split
    pixels = torch.round(x * dm.input_std + dm.input_mean).to(torch.uint8).flatten(1)
    return Counter(
        p.numpy().tobytes() + bytes(labels.tolist()) for p, labels in zip(pixels, y, strict=True)
    )


def file_samples(records: Records) -> Counter[bytes]:
    return Counter(
        image.tobytes() + labels.tobytes()
        for image, labels in zip(records.images, records.labels, strict=True)
    )


def test_splits_batches_and_levels(vimh_dir: Path) -> None:
    before = files(vimh_dir)
    dm = VIMHDataModule(str(vimh_dir), batch_size=32, val_fraction=0.25)
    dm.setup()
    assert {name: len(s[0]) for name, s in dm.splits.items()} == {
        "train": 120,
        "val": 40,
        "test": 40,
    }
    x, y, levels = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 1, 32, 32) and x.dtype == torch.float32
    assert y.shape == (32, 2) and y.dtype == torch.int64 and 0 <= y.min() <= y.max() <= 255
    assert levels.shape == (32, 2) and levels.dtype == torch.float32
    train_x, _, train_levels = dm.splits["train"]
    assert abs(float(train_x.mean())) < 1e-4 and abs(float(train_x.std()) - 1) < 1e-3
    assert torch.allclose(train_levels.mean(0), torch.zeros(2), atol=1e-4)
    assert torch.allclose(train_levels.std(0), torch.ones(2), atol=1e-3)
    # train and val share out the train file's samples; test is the test file
    _, raw = read_dataset(vimh_dir)
    train, val = samples(dm.splits["train"], dm), samples(dm.splits["val"], dm)
    assert train + val == file_samples(raw["train"])
    assert samples(dm.splits["test"], dm) == file_samples(raw["test"])
    assert torch.equal(dm.splits["test"][1], torch.from_numpy(raw["test"].labels).long())
    # the val split depends on split_seed only
    same = VIMHDataModule(str(vimh_dir), val_fraction=0.25)
    other = VIMHDataModule(str(vimh_dir), val_fraction=0.25, split_seed=7)
    same.setup()
    other.setup()
    assert torch.equal(same.splits["val"][1], dm.splits["val"][1])
    assert not torch.equal(other.splits["val"][1], dm.splits["val"][1])
    assert files(vimh_dir) == before  # reading wrote nothing


def test_levels_carry_the_velocity(vimh_dir: Path) -> None:
    dm = VIMHDataModule(str(vimh_dir))
    dm.setup()
    _, y, levels = dm.splits["train"]
    velocity_head = dm.spec["heads"][1]
    gain_db = 40 * torch.log10(label_values(y[:, 1], velocity_head) / 127)
    correlation = torch.corrcoef(torch.stack([gain_db, levels[:, 1]]))[0, 1]
    assert correlation > 0.95


def test_heads_come_from_the_metadata(vimh_dir: Path) -> None:
    dm = VIMHDataModule(str(vimh_dir))
    spec = dm.spec
    assert spec["input_shape"] == [1, 32, 32]
    assert spec["heads"] == [
        {
            "name": "note_number",
            "kind": "classification",
            "num_classes": 49,
            "min": 40.0,
            "max": 88.0,
            "step": 1.0,
        },
        {
            "name": "note_velocity",
            "kind": "classification",
            "num_classes": 88,
            "min": 40.0,
            "max": 127.0,
            "step": 1.0,
        },
    ]
    dm.setup()
    for i, head in enumerate(spec["heads"]):
        classes = label_classes(dm.splits["train"][1][:, i], head)
        assert 0 <= classes.min() and classes.max() < head["num_classes"]
    mixed = VIMHDataModule(
        str(vimh_dir), head_kind="ordinal", head_kinds={"note_velocity": "regression"}
    )
    assert [h["kind"] for h in mixed.spec["heads"]] == ["ordinal", "regression"]
    # a model config's ??? values take the spec as plain data
    node = OmegaConf.create({"net": {"input_shape": "???", "heads": "???"}})
    fill_from_data(node, spec)
    assert OmegaConf.to_container(node.net.heads) == spec["heads"]
    with pytest.raises(UserInputError, match=r"\['pitch'\], which are not parameters"):
        _ = VIMHDataModule(str(vimh_dir), head_kinds={"pitch": "regression"}).spec
    with pytest.raises(UserInputError, match="'softmax' for note_number"):
        _ = VIMHDataModule(str(vimh_dir), head_kind="softmax").spec
    with pytest.raises(UserInputError, match="0.999 of the 160 samples"):
        VIMHDataModule(str(vimh_dir), val_fraction=0.999).setup()


def test_generate_makes_once_then_reuses(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    name = "vimh-32x32x1_8000Hz_1p0s_64dss_moog_basic_4p"
    overrides = (
        "data.generate=true",
        "data.generation.size=64",
        "synth@data.generation.synth=moog_basic",
        f"data.data_dir={tmp_path / name}",
    )
    dm = hydra.utils.instantiate(vimh_config(tmp_path, *overrides).data)
    assert len(dm.spec["heads"]) == 4  # the model's spec is there before prepare_data
    before = files(tmp_path / name)
    again = hydra.utils.instantiate(vimh_config(tmp_path, *overrides).data)
    again.prepare_data()
    again.setup()
    assert "exists with these settings" in capsys.readouterr().out
    assert files(tmp_path / name) == before
    assert len(again.splits["test"][0]) == 13  # round(64 * 0.2)
    stray = vimh_config(tmp_path, *overrides[:3], f"data.data_dir={tmp_path / 'mine'}")
    with pytest.raises(UserInputError) as error:
        hydra.utils.instantiate(stray.data).prepare_data()
    assert f"data.data_dir={tmp_path / name}" in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_missing_data_set_names_path_and_make_target(tmp_path: Path) -> None:
    # data.generate=true is the default (generated on first use); switched off, it names the way
    dm = hydra.utils.instantiate(vimh_config(tmp_path, "data.generate=false").data)
    with pytest.raises(UserInputError) as error:
        _ = dm.spec
    message = str(error.value)
    assert str(tmp_path / "vimh-32x32x1_8000Hz_1p0s_2000dss_simple_saw_2p") in message
    assert "make data-vimh" in message and "data.generate=true" in message
    assert list(tmp_path.iterdir()) == []


def test_corrupt_data_set_stops_setup(vimh_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(vimh_dir, tmp_path / vimh_dir.name))
    truncated = (copy / "test").read_bytes()[:-100]
    (copy / "test").write_bytes(truncated)
    with pytest.raises(UserInputError, match=r"/test: record 39 is truncated"):
        VIMHDataModule(str(copy)).setup()
    assert (copy / "test").read_bytes() == truncated  # reported, not repaired
