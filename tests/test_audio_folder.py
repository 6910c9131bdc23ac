"""Audio folders: WAV notes from the project's synthesizers as spectrograms, resampling,
the bad-input messages, and what the spectral CNN learns from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import wavfile

from src.data.audio_folder_datamodule import AudioFolderDataModule
from src.data.components.folder_splits import AUDIO_EXTENSIONS, make_splits
from src.tools.example_folders import AUDIO_CLASSES, write_synth_notes
from src.train import train
from src.utils.errors import UserInputError
from tests.conftest import compose_config


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    """4 classes (saw/sine x low/high pitch), 20 notes each, 8 kHz, split."""
    write_synth_notes(tmp_path, per_class=20)
    make_splits(tmp_path, extensions=AUDIO_EXTENSIONS)
    return tmp_path


def test_batches_are_vimh_shaped_with_one_head(notes: Path) -> None:
    dm = AudioFolderDataModule(str(notes), num_workers=0, batch_size=8)
    dm.setup()
    assert dm.spec["input_shape"] == [1, 32, 32]
    assert dm.spec["heads"][0]["num_classes"] == len(AUDIO_CLASSES) == 4
    x, y, levels = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 1, 32, 32) and y.shape == (8, 1) and levels.shape == (8, 2)
    train_x = torch.cat([b[0] for b in dm.loader("train", shuffle=False)])
    assert abs(float(train_x.mean())) < 1e-3 and abs(float(train_x.std()) - 1) < 0.05
    # a high note's energy sits in higher rows than a low one's (row 0 is the lowest bin)
    data = dm.datasets["train"]
    rows = torch.arange(32, dtype=torch.float32)
    centre = {}
    for name in ("sine_low", "sine_high"):
        i = next(i for i, f in enumerate(data.files) if f.startswith(name))
        energy = data[i][0][0].exp().sum(dim=1)
        centre[name] = float((energy * rows).sum() / energy.sum())
    assert centre["sine_high"] > centre["sine_low"]


def test_other_rates_are_resampled_or_refused(notes: Path) -> None:
    name = (notes / "splits" / "train.txt").read_text().split()[0]
    rate, audio = wavfile.read(notes / "raw" / name)
    dm = AudioFolderDataModule(str(notes), num_workers=0)
    dm.setup()
    index = dm.datasets["train"].files.index(name)
    before = dm.datasets["train"][index][0]
    upsampled = np.repeat(audio, 2)  # the same note at 16 kHz (held samples)
    wavfile.write(notes / "raw" / name, 2 * rate, upsampled)
    snapshot = (notes / "raw" / name).read_bytes()
    with pytest.raises(UserInputError, match="16000 Hz, not data.sample_rate=8000.*resample=true"):
        AudioFolderDataModule(str(notes), num_workers=0, resample=False).setup()
    assert (notes / "raw" / name).read_bytes() == snapshot
    again = AudioFolderDataModule(str(notes), num_workers=0)
    again.setup()
    after = again.datasets["train"][index][0]
    assert float((after - before).abs().mean()) < 0.2  # resampled to nearly the same image


def test_corrupt_wav_is_named_or_skipped(notes: Path) -> None:
    name = (notes / "splits" / "val.txt").read_text().split()[0]
    (notes / "raw" / name).write_bytes(b"RIFF not really")
    with pytest.raises(UserInputError, match=f"{name} is not a WAV file.*skip_corrupt"):
        AudioFolderDataModule(str(notes), num_workers=0).setup()
    dm = AudioFolderDataModule(str(notes), num_workers=0, skip_corrupt=True)
    dm.setup()
    assert name not in dm.files["val"]


@pytest.mark.slow
def test_spectral_cnn_learns_synth_notes(tmp_path: Path) -> None:
    """The issue's bar: 4 waveform/pitch classes of synthesized notes, test acc >= 0.95."""
    write_synth_notes(tmp_path / "notes", per_class=40)
    make_splits(tmp_path / "notes", extensions=AUDIO_EXTENSIONS)
    cfg = compose_config(
        "train.yaml",
        [
            "experiment=audio_folder_cnn",
            f"data.root={tmp_path / 'notes'}",
            "data.num_workers=1",
            "trainer.max_epochs=6",
            "logger=none",
        ],
        tmp_path / "run",
    )
    metrics, _ = train(cfg)
    acc = float(metrics["test/label/acc"])
    print(f"synth notes (4 classes x 40), audio_folder_cnn, 6 epochs: test/label/acc={acc:.4f}")
    assert acc >= 0.95
