"""VIMH records: round trips, a record built byte by byte, every corruption named by
file and record, and label bytes turned back into classes and values."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from src.models.components.head_specs import label_classes, label_values
from src.utils.errors import UserInputError
from src.vimh.format import (
    INFO_FILE,
    Records,
    dataset_name,
    encode_labels,
    read_dataset,
    read_records,
    write_dataset,
    write_records,
)
from src.vimh.heads import head_specs


def random_records(count: int, num_labels: int = 2, shape=(1, 4, 6), seed: int = 0) -> Records:
    rng = np.random.default_rng(seed)
    high = rng.uniform(-40, 0, count).astype(np.float32)
    return Records(
        images=rng.integers(0, 256, (count, *shape), dtype=np.uint8),
        labels=rng.integers(0, 256, (count, num_labels), dtype=np.uint8),
        levels=np.stack([high - 80, high], axis=1),
    )


def small_info(records: dict[str, Records]) -> dict:
    channels, height, width = records["train"].images.shape[1:]
    return {
        "format": "VIMH",
        "version": "1.0",
        "height": height,
        "width": width,
        "channels": channels,
        "parameter_names": ["a", "b"],
        "parameter_mappings": {"a": {"min": 0, "max": 1}, "b": {"min": 40, "max": 127, "step": 1}},
        "train_samples": len(records["train"].images),
        "test_samples": len(records["test"].images),
    }


def assert_same(a: Records, b: Records) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype and np.array_equal(x, y)


def test_round_trip(tmp_path: Path) -> None:
    records = random_records(50, num_labels=3, shape=(2, 5, 7))
    write_records(tmp_path / "train", records)
    assert (tmp_path / "train").stat().st_size == 50 * (15 + 2 * 3 + 2 * 5 * 7)
    assert_same(read_records(tmp_path / "train", num_params=3), records)


def test_data_set_round_trip(tmp_path: Path) -> None:
    splits = {"train": random_records(30, seed=1), "test": random_records(10, seed=2)}
    write_dataset(tmp_path, small_info(splits), splits)
    info, read = read_dataset(tmp_path)
    assert info["train_samples"] == 30
    for split in splits:
        assert_same(read[split], splits[split])


def hand_built_record(
    labels: list[tuple[int, int]], pixels: bytes, height=2, width=3, channels=1, db=(-70.5, 9.5)
) -> bytes:
    header = struct.pack("<HHHffB", height, width, channels, *db, len(labels))
    return header + b"".join(struct.pack("<BB", i, v) for i, v in labels) + pixels


def test_hand_built_records(tmp_path: Path) -> None:
    # two records; the second lists its labels out of param_id order
    first = hand_built_record([(0, 7), (1, 250)], bytes(range(6)))
    second = hand_built_record([(1, 3), (0, 255)], bytes(range(100, 106)), db=(-1.0, -1.0))
    (tmp_path / "train").write_bytes(first + second)
    images, labels, levels = read_records(tmp_path / "train", num_params=2)
    assert images.shape == (2, 1, 2, 3)
    assert images[0, 0].tolist() == [[0, 1, 2], [3, 4, 5]]  # (C, H, W), row-major
    assert labels.tolist() == [[7, 250], [255, 3]]  # sorted by param_id
    assert levels.tolist() == [[-70.5, 9.5], [-1.0, -1.0]]
    # the writer produces these very bytes (it writes ids in order)
    write_records(tmp_path / "again", Records(images[:1], labels[:1], levels[:1]))
    assert (tmp_path / "again").read_bytes() == first


@pytest.fixture
def train_file(tmp_path: Path) -> Path:
    path = tmp_path / "train"
    write_records(path, random_records(4))  # records of 15 + 4 + 24 = 43 bytes
    return path


def expect_error(path: Path, num_params: int, *fragments: str) -> None:
    with pytest.raises(UserInputError) as error:
        read_records(path, num_params)
    message = str(error.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message


def test_truncated_file_names_the_record(train_file: Path) -> None:
    data = train_file.read_bytes()
    train_file.write_bytes(data[:-5])
    expect_error(train_file, 2, "record 3 is truncated")
    train_file.write_bytes(data[:10])
    expect_error(train_file, 2, "record 0 is truncated")


def test_inconsistent_header_names_the_record(train_file: Path) -> None:
    data = bytearray(train_file.read_bytes())
    data[2 * 43 + 2 : 2 * 43 + 4] = struct.pack("<H", 7)  # record 2's width
    train_file.write_bytes(bytes(data))
    expect_error(train_file, 2, "record 2 has an inconsistent header", "4x7x1")
    data = bytearray(train_file.read_bytes())
    data[2 * 43 + 2 : 2 * 43 + 4] = struct.pack("<H", 6)
    data[43 + 6 : 43 + 10] = struct.pack("<f", float("nan"))  # record 1's spec_min_db
    train_file.write_bytes(bytes(data))
    expect_error(train_file, 2, "record 1 has an inconsistent header", "spec_min_db=nan")


def test_label_out_of_range_names_the_record(train_file: Path) -> None:
    data = bytearray(train_file.read_bytes())
    data[3 * 43 + 15 + 2] = 9  # record 3's second param_id
    train_file.write_bytes(bytes(data))
    expect_error(train_file, 2, "record 3 has a label out of range", "param_id 9")
    data[3 * 43 + 15 + 2] = 0  # now record 3 names parameter 0 twice
    train_file.write_bytes(bytes(data))
    expect_error(train_file, 2, "record 3 labels parameters [0, 0]")
    expect_error(train_file, 3, "record 0 has 2 labels", "names 3 parameters")


def test_json_that_disagrees_with_the_binary(tmp_path: Path) -> None:
    splits = {"train": random_records(6), "test": random_records(3)}
    info = small_info(splits)
    write_dataset(tmp_path, info, splits)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name != INFO_FILE}

    def expect(change: dict, *fragments: str) -> None:
        (tmp_path / INFO_FILE).write_text(json.dumps({**info, **change}))
        with pytest.raises(UserInputError) as error:
            read_dataset(tmp_path)
        message = str(error.value)
        for fragment in fragments:
            assert fragment in message, message

    expect({"height": 5}, str(tmp_path / "train"), "record 0 is 4x6x1", "says 5x6x1")
    expect({"test_samples": 4}, str(tmp_path / "test"), "holds 3 records (0..2)", "test_samples=4")
    expect({"parameter_names": ["a"]}, str(tmp_path / "train"), "record 0 has 2 labels")
    expect({"format": "CIFAR"}, str(tmp_path / INFO_FILE), "not 'VIMH'")
    expect({"parameter_mappings": {"a": {"min": 1, "max": 1}}}, "'a'", "min < max")
    (tmp_path / INFO_FILE).write_text("{not json")
    with pytest.raises(UserInputError, match="not valid JSON"):
        read_dataset(tmp_path)
    # reading never writes: the record files are untouched
    assert before == {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name != INFO_FILE}


def test_dataset_name() -> None:
    name = dataset_name(32, 64, 1, 8000, 1.0, 2000, "moog_envelope", 7)
    assert name == "vimh-32x64x1_8000Hz_1p0s_2000dss_moog_envelope_7p"
    assert re.search(r"_0p25s_", dataset_name(8, 8, 1, 16000, 0.25, 10, "x", 1))


@pytest.mark.parametrize(
    ("low", "high", "step"), [(40, 88, 1), (40, 127, 1), (0.005, 0.255, 0.001), (-3, 3, 0.5)]
)
def test_label_bytes_map_back_to_every_grid_value(low: float, high: float, step: float) -> None:
    """Every value of a grid is encoded to a byte that decodes to the same class and value."""
    info = {
        "parameter_names": ["p"],
        "parameter_mappings": {"p": {"min": low, "max": high, "step": step}},
    }
    (head,) = head_specs(info)
    grid = low + step * np.arange(head["num_classes"], dtype=np.float64)
    assert head["num_classes"] == round((high - low) / step) + 1
    labels = torch.from_numpy(encode_labels(grid, low, high))
    assert label_classes(labels, head).tolist() == list(range(head["num_classes"]))
    assert torch.allclose(label_values(labels, head).double(), torch.from_numpy(grid), atol=1e-5)


def test_labels_without_a_step_decode_within_a_byte() -> None:
    info = {"parameter_names": ["p"], "parameter_mappings": {"p": {"min": -2.0, "max": 3.0}}}
    (head,) = head_specs(info, head_kind="regression")
    assert head["num_classes"] == 256 and head["step"] is None and head["kind"] == "regression"
    values = np.random.default_rng(0).uniform(-2, 3, 1000)
    labels = torch.from_numpy(encode_labels(values, -2.0, 3.0))
    assert torch.equal(label_classes(labels, head), labels.long())
    decoded = label_values(labels, head).double().numpy()
    assert np.abs(decoded - values).max() <= 0.5 * 5 / 255 + 1e-6
    assert label_values(torch.tensor([255]), head).item() == 3.0  # the top byte is max
