"""WAV files as spectrogram samples, computed in loader workers.

Each sample goes: file -> float mono audio -> resampled to the configured rate
(scipy's polyphase filter) -> cut or zero-padded to ``num_samples`` -> the
project's STFT/mel image (``src.vimh.spectrograms``, one ``configs/stft`` file)
-> bytes scaled to 0..1 and standardised, with the image's (min, max) dB as
``levels``: the VIMH sample layout, so the spectral nets take them as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import gcd
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from src.data.components.file_samples import Unreadable
from src.vimh.spectrograms import Spectrogram


def read_wav(path: Path, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Float32 mono audio (-1..1) and the file's rate; resampled when ``sample_rate``
    is given and differs."""
    from scipy.io import wavfile

    rate, data = wavfile.read(path)
    audio = np.asarray(data)
    if np.issubdtype(audio.dtype, np.integer):
        audio = audio.astype(np.float32) / float(np.iinfo(audio.dtype).max)
    audio = audio.astype(np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if sample_rate is not None and rate != sample_rate:
        from scipy.signal import resample_poly

        common = gcd(int(rate), int(sample_rate))
        audio = resample_poly(audio, sample_rate // common, rate // common).astype(np.float32)
    return audio, int(rate)


def wav_rate(path: Path) -> int:
    """The sample rate in a WAV file's header (the samples are memory-mapped, not read)."""
    from scipy.io import wavfile

    rate, _ = wavfile.read(path, mmap=True)
    return int(rate)


class AudioFiles(Dataset):
    """``(x, label, levels)`` of WAV files: x (1, height, width) standardised spectrogram,
    label (1,) the class index (one head), levels (2,) standardised min/max dB."""

    def __init__(
        self,
        raw: Path,
        files: Sequence[str],
        labels: Sequence[int],
        sample_rate: int,
        num_samples: int,
        spectrogram: Spectrogram,
        shape: tuple[int, int],
        stats: dict[str, list[float]] | None,
    ) -> None:
        self.raw, self.files = raw, list(files)
        self.labels = torch.as_tensor(list(labels), dtype=torch.long)
        self.sample_rate, self.num_samples = sample_rate, num_samples
        self.spectrogram, (self.height, self.width) = spectrogram, shape
        self.stats = stats

    def __len__(self) -> int:
        return len(self.files)

    def image(self, audio: np.ndarray) -> tuple[Tensor, Tensor]:
        audio = audio[: self.num_samples]
        if len(audio) < self.num_samples:
            audio = np.pad(audio, (0, self.num_samples - len(audio)))
        db = self.spectrogram.power_db(audio[None], self.sample_rate, self.height, self.width)
        pixels, levels = self.spectrogram.to_bytes(db)
        pixels = pixels[0] if pixels.ndim == 4 else pixels  # (channels, H, W) of the one note
        x = torch.from_numpy(pixels).float().div_(255.0).reshape(-1, self.height, self.width)
        return x, torch.from_numpy(levels[0])

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor] | Unreadable:
        path = self.raw / self.files[index]
        try:
            audio, _ = read_wav(path, self.sample_rate)
        except (OSError, ValueError) as error:
            return Unreadable(str(path), str(error))
        x, levels = self.image(audio)
        if self.stats is not None:
            x = (x - self.stats["x_mean"][0]) / self.stats["x_std"][0]
            levels = (levels - torch.tensor(self.stats["levels_mean"])) / torch.tensor(
                self.stats["levels_std"]
            )
        return x, self.labels[index : index + 1], levels
