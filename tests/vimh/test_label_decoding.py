"""data.label_decoding: the midpoint rule (default) and NSMT's reader's rule, on a small data
set in NSMT's published layout that this test writes byte by byte (VIMH records, a JSON
whose every parameter has min/max/step, no ``continuous`` flag)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from src.models.components.head_specs import label_classes, label_values
from src.utils.errors import UserInputError
from src.vimh.datamodule import VIMHDataModule
from tests.vimh.test_generate import nsmt_classes

# a decay drawn continuously but labelled on a 0.05 grid, as NSMT sets label it
MAPPINGS = {
    "note_number": {"min": 40, "max": 88, "step": 1},
    "log10_decay_time": {"min": -1.0, "max": 1.0, "step": 0.05},
}
SAMPLES = {"train": 400, "test": 100}


def nsmt_record(pixels: np.ndarray, levels: tuple[float, float], labels: list[int]) -> bytes:
    channels, height, width = pixels.shape
    header = struct.pack("<HHHffB", height, width, channels, *levels, len(labels))
    pairs = b"".join(struct.pack("<BB", i, q) for i, q in enumerate(labels))
    return header + pairs + pixels.astype(np.uint8).tobytes()


@pytest.fixture(scope="module")
def nsmt_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """The data set's directory and the true values of every parameter per split."""
    directory = tmp_path_factory.mktemp("nsmt") / "vimh-8x8x1_nsmt"
    directory.mkdir()
    rng = np.random.default_rng(0)
    truth = {}
    for split, count in SAMPLES.items():
        notes = rng.integers(40, 89, count).astype(float)
        decays = rng.uniform(-1.0, 1.0, count)
        truth[split] = np.stack([notes, decays], axis=1)
        records = []
        for note, decay in truth[split]:
            labels = [
                min(255, int(np.floor(255 * (value - m["min"]) / (m["max"] - m["min"]))))
                for value, m in zip((note, decay), MAPPINGS.values(), strict=True)
            ]
            pixels = rng.integers(0, 256, (1, 8, 8))
            records.append(nsmt_record(pixels, (-80.0, float(decay)), labels))
        (directory / split).write_bytes(b"".join(records))
    info = {
        "format": "VIMH",
        "version": "1.0",
        "dataset_name": directory.name,
        "height": 8,
        "width": 8,
        "channels": 1,
        "parameter_names": list(MAPPINGS),
        "parameter_mappings": MAPPINGS,
        "train_samples": SAMPLES["train"],
        "test_samples": SAMPLES["test"],
        "n_labels_per_sample": 2,
    }
    (directory / "vimh_dataset_info.json").write_text(json.dumps(info, indent=2))
    return directory, truth


def file_labels(directory: Path, split: str) -> tuple[dict, np.ndarray]:
    from src.vimh.format import read_dataset

    info, files = read_dataset(directory)
    return info, files[split].labels


def test_nsmt_decoding_is_nsmt_readers_rule_on_every_label(nsmt_set) -> None:
    directory, _ = nsmt_set
    info, labels = file_labels(directory, "test")
    dm = VIMHDataModule(str(directory), label_decoding="nsmt")
    for i, head in enumerate(dm.spec["heads"]):
        assert head["label_decoding"] == "nsmt"
        ours = label_classes(torch.from_numpy(labels[:, i]), head).numpy()
        assert (ours == nsmt_classes(info, head["name"], labels[:, i])).all(), head["name"]
        values = label_values(torch.from_numpy(labels[:, i]), head).numpy()
        assert np.allclose(values, head["min"] + ours * head["step"], atol=1e-5)


def test_midpoint_is_the_default_differs_by_plus_one_and_is_nearer_the_truth(nsmt_set) -> None:
    directory, truth = nsmt_set
    info, labels = file_labels(directory, "test")
    dm = VIMHDataModule(str(directory))
    assert all("label_decoding" not in h for h in dm.spec["heads"])  # specs as before
    for i, head in enumerate(dm.spec["heads"]):
        column = labels[:, i]
        midpoint = label_classes(torch.from_numpy(column), head).numpy()
        nsmt = nsmt_classes(info, head["name"], column)
        true = np.rint((truth["test"][:, i] - head["min"]) / head["step"]).astype(int)
        differ = midpoint != nsmt
        if head["name"] == "note_number":  # a byte narrower than half a step: no difference
            assert not differ.any() and (midpoint == true).all()
            continue
        # the decay: a byte is 0.16 of a step wide, so about 8% of labels move up one class
        assert 0.02 < differ.mean() < 0.2, differ.mean()
        assert ((midpoint - nsmt)[differ] == 1).all()
        assert (midpoint == true).mean() > (nsmt == true).mean()
        mid_error = np.abs(
            label_values(torch.from_numpy(column), head).numpy() - truth["test"][:, i]
        )
        nsmt_error = np.abs(head["min"] + nsmt * head["step"] - truth["test"][:, i])
        assert mid_error.mean() < nsmt_error.mean()


def test_a_wrong_label_decoding_is_one_clear_message(nsmt_set) -> None:
    directory, _ = nsmt_set
    with pytest.raises(UserInputError, match=r"data.label_decoding='lhte' is not one of"):
        _ = VIMHDataModule(str(directory), label_decoding="lhte").spec
