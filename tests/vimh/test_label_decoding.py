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


def test_classes_are_named_by_the_value_they_stand_for(nsmt_set) -> None:
    """The figures and the classification report name a head's classes by the parameter
    value each stands for (they showed the indices): MIDI notes 40..88, decays on their
    0.05 grid, with as many decimals as the grid needs."""
    directory, _ = nsmt_set
    dm = VIMHDataModule(str(directory))
    assert dm.class_names("note_number") == [str(n) for n in range(40, 89)]
    decays = dm.class_names("log10_decay_time")
    assert len(decays) == 41 and decays[:3] == ["-1.00", "-0.95", "-0.90"]
    assert decays[20] == "0.00" and decays[-1] == "1.00"  # no "-0.00"
    assert dm.class_names("pitch") is None  # not a head of this data set: indices


@pytest.mark.parametrize("decoding", ["midpoint", "nsmt"])
def test_a_continuous_head_names_each_byte_by_its_value(decoding: str) -> None:
    from src.models.components.head_kinds import class_names

    # moog_basic's filter_resonance: drawn continuously, one class per label byte
    head = {"name": "filter_resonance", "kind": "classification", "num_classes": 256,
            "min": 0.0, "max": 0.95, "step": None, "label_decoding": decoding}  # fmt: skip
    names = class_names(head)
    assert len(set(names)) == 256  # every byte its own name, 3 decimals (a byte: 0.0037)
    assert names[0] == ("0.002" if decoding == "midpoint" else "0.000")
    assert names[-1] == "0.950"  # the top byte is max itself
    values = label_values(torch.arange(256), head).numpy()
    assert np.abs(np.array(names, dtype=float) - values).max() <= 0.0005 + 1e-9
