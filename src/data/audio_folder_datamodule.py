"""Audio folders: ``<root>/raw/<class>/<file>.wav`` as spectrograms for the spectral nets.

``data=audio_folder data.root=<root>`` after ``make split ROOT=<root> KIND=audio``.
Batches are ``(x, y, levels)`` as VIMH's are, with one classification head
(``label``), so ``model=vimh_cnn_16k`` (and the other spectral nets) train on
recordings as they are. The spectrogram is one of ``configs/stft/``
(``stft@data.spectrogram=mel_hann256``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from src.data.components.audio_files import AudioFiles, read_wav, wav_rate
from src.data.components.folder_splits import AUDIO_EXTENSIONS, split_names
from src.data.components.image_files import stats_path
from src.data.folder_datamodule import FolderDataModule
from src.utils.errors import UserInputError
from src.utils.logging_utils import RankedLogger
from src.vimh.spectrograms import Spectrogram

log = RankedLogger(__name__, rank_zero_only=True)


class AudioFolderDataModule(FolderDataModule):
    """WAV files of ``<root>/raw/<class>/`` as ``(x, y, levels)`` spectrogram batches.

    Args:
        root: the data folder (None: the example folder of data.example).
        sample_rate: the rate every file is brought to (Hz).
        resample: resample files of another rate; ``False``: such a file stops the run.
        duration: seconds of each file used (cut, or zero-padded).
        spectrogram: a ``configs/stft/`` node (kind, n_fft, window, top_db, ...).
        height, width: frequency rows and time columns of the image.
        shared: batch_size, shuffle_seed, drop_last, num_folds, fold, num_workers,
            pin_memory, persistent_workers, skip_corrupt, example: see ``FolderDataModule``.
    """

    extensions = AUDIO_EXTENSIONS
    image_origin = "lower"  # row 0 is the lowest frequency: figures draw it at the bottom
    example_kind = "audio"

    def __init__(
        self,
        root: str | None,
        sample_rate: int = 8000,
        resample: bool = True,
        duration: float = 0.25,
        spectrogram: Mapping[str, Any] | None = None,
        height: int = 32,
        width: int = 32,
        **shared: Any,
    ) -> None:
        super().__init__(root, **shared)
        settings = dict(spectrogram or {"kind": "stft", "n_fft": 256, "window": "hann"})
        self.spectrogram = Spectrogram.from_settings(settings, "data.spectrogram")
        self.spectrogram.check_height(height, sample_rate)
        self.num_samples = round(duration * sample_rate)
        self.spectrogram.hop_length(self.num_samples, width)  # stops on a note too short
        self.sample_rate, self.resample = sample_rate, resample
        self.height, self.width = height, width
        self.stats: dict[str, list[float]] | None = None
        silence = self.audio_dataset([], None).image(np.zeros(self.num_samples, np.float32))[0]
        self.channels = silence.shape[0]  # 1, or more when the spectrogram adds channels

    @property
    def spec(self) -> dict[str, Any]:
        k = len(self.classes)
        head = {"name": "label", "kind": "classification", "num_classes": k,
                "min": 0.0, "max": float(k - 1), "step": None}  # fmt: skip
        # no top-level num_classes: a classifier (model=cnn) cannot read (x, y, levels)
        # batches, so it stops at ${data_spec:num_classes} with the "do not go together" message
        return {"input_shape": [self.channels, self.height, self.width], "heads": [head]}

    def prepare(self, files: dict[str, list[str]]) -> dict[str, list[str]]:
        raw = self.root / "raw"
        kept = {}
        for name, listed in files.items():
            good = []
            for rel in listed:
                try:
                    rate = wav_rate(raw / rel)
                except (OSError, ValueError) as error:
                    if not self.skip_corrupt:
                        raise UserInputError(
                            f"{raw / rel} is not a WAV file scipy reads ({error}). Replace or "
                            "remove it, or set data.skip_corrupt=true to skip such files."
                        ) from error
                    log.warning(f"Skipped unreadable {raw / rel}")
                    continue
                if rate != self.sample_rate and not self.resample:
                    raise UserInputError(
                        f"{raw / rel} is sampled at {rate} Hz, not data.sample_rate="
                        f"{self.sample_rate}, and data.resample=false. Set data.resample=true "
                        f"(resampled on loading) or data.sample_rate={rate}."
                    )
                good.append(rel)
            kept[name] = good
        self.stats = self.fit_stats(kept["train"])
        return kept

    def fit_stats(self, train: list[str]) -> dict[str, list[float]]:
        """Mean/std of the image values and of the levels over the training split (cached)."""
        name = split_names(self.num_folds, self.fold)[0]
        key = {"rate": self.sample_rate, "samples": self.num_samples, "shape": [self.height,
               self.width], "spectrogram": repr(self.spectrogram)}  # fmt: skip
        path = stats_path(self.root / "splits", name, train, key)
        if path.is_file():
            return json.loads(path.read_text())
        dataset = self.audio_dataset(train, None)
        xs, levels = [], []
        for rel in train:
            audio, _ = read_wav(self.root / "raw" / rel, self.sample_rate)
            x, level = dataset.image(audio)
            xs.append(torch.stack([x.mean(), (x * x).mean()]).double())  # over all channels
            levels.append(level.double())
        moments, level = torch.stack(xs).mean(dim=0), torch.stack(levels)
        x_std = (moments[1] - moments[0] ** 2).clamp_min(1e-12).sqrt()
        stats = {"x_mean": [float(moments[0])], "x_std": [float(x_std)],
                 "levels_mean": level.mean(dim=0).tolist(),
                 "levels_std": level.std(dim=0).clamp_min(1e-6).tolist()}  # fmt: skip
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps({**stats, **key}, indent=2))
        partial.replace(path)
        return stats

    def audio_dataset(self, files: list[str], stats: dict[str, list[float]] | None) -> AudioFiles:
        labels = [self.label_of(f) for f in files]
        return AudioFiles(self.root / "raw", files, labels, self.sample_rate, self.num_samples,
                          self.spectrogram, (self.height, self.width), stats)  # fmt: skip

    def make_dataset(self, split: str, files: list[str]) -> Dataset:
        return self.audio_dataset(files, self.stats)
