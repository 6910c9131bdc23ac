"""Spectrogram images of many notes at once: STFT or mel, in dB, as bytes.

An image has frequency on its rows (row 0 the lowest) and time on its
columns. The frames are spread evenly over the whole note so that ``width``
columns always cover it: the hop is derived from the note's length.

Power is normalised by the window's squared sum, so a full-scale sinusoid on a
bin reads about -6 dB whatever the window. Each image is then mapped to bytes
on its own: its loudest value becomes 255 and its quietest (at most
``top_db`` below) 0. That keeps every image's detail, but removes its level;
the two dB values that undo the mapping travel with the image
(``spec_min_db``, ``spec_max_db`` in a VIMH record).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from src.utils.errors import UserInputError

WINDOWS = ("rectangular", "hann")
KINDS = ("stft", "mel")
ENVELOPES = ("temporal", "spectral")


@dataclass(frozen=True)
class Spectrogram:
    """How audio becomes an image (one ``configs/stft/*.yaml`` file).

    Args:
        kind: ``stft`` (the lowest ``height`` bins of the linear spectrum) or
            ``mel`` (``height`` triangular mel bands from ``f_min`` to ``f_max``).
        n_fft: window length in samples (also the FFT size).
        window: ``rectangular`` or ``hann``.
        top_db: dynamic range kept below each image's loudest value.
        f_min, f_max: mel band edges in Hz (``f_max`` null: half the sample rate).
        pre_emphasis: ``a`` of the filter ``y[n] = x[n] - a x[n-1]`` applied to the
            audio first (0: none; 0.97 is the speech habit): it lifts the high
            partials that a low note's spectrum would otherwise leave near the floor.
        envelopes: extra image channels after the spectrogram (NSMT's
            ``--temporal-envelope --spectral-envelope``): ``temporal`` (each column
            the frame's mean power, the same down the rows) and ``spectral`` (each
            row the band's mean power over the note, the same along the columns),
            on the spectrogram's dB scale, so ``levels`` describe every channel.
    """

    kind: str
    n_fft: int
    window: str
    top_db: float = 80.0
    f_min: float = 0.0
    f_max: float | None = None
    pre_emphasis: float = 0.0
    envelopes: tuple[str, ...] = ()

    @property
    def channels(self) -> int:
        return 1 + len(self.envelopes)

    @classmethod
    def from_settings(cls, settings: dict[str, Any], where: str) -> Spectrogram:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise UserInputError(f"{where} has unknown keys {unknown}; known: {sorted(known)}.")
        made = cls(**{**settings, "envelopes": tuple(settings.get("envelopes") or ())})
        if made.kind not in KINDS or made.window not in WINDOWS:
            raise UserInputError(
                f"{where}: kind must be one of {KINDS} and window one of {WINDOWS}, "
                f"got kind={made.kind}, window={made.window}."
            )
        odd = [e for e in made.envelopes if e not in ENVELOPES] or (
            made.envelopes if len(set(made.envelopes)) != len(made.envelopes) else []
        )
        if odd or not 0.0 <= made.pre_emphasis < 1.0:
            raise UserInputError(
                f"{where}: envelopes must be distinct names from {ENVELOPES} (got "
                f"{list(made.envelopes)}) and pre_emphasis in [0, 1) (got {made.pre_emphasis})."
            )
        return made

    def hop_length(self, num_samples: int, width: int) -> int:
        """The hop that spreads ``width`` frames over the whole note."""
        if width < 2 or num_samples < self.n_fft + width - 1:
            raise UserInputError(
                f"A {num_samples}-sample note cannot give {width} frames of {self.n_fft} "
                "samples: lengthen the note or lower the width or n_fft (width >= 2)."
            )
        return (num_samples - self.n_fft) // (width - 1)

    def check_height(self, height: int, sample_rate: int) -> None:
        """Stop unless every one of ``height`` rows gets some of the spectrum."""
        bins = self.n_fft // 2 + 1
        if self.kind == "stft" and height > bins:
            raise UserInputError(
                f"An STFT of n_fft={self.n_fft} has {bins} bins, fewer than height={height}: "
                "raise n_fft or lower the height."
            )
        if self.kind == "mel":
            f_max = self.f_max if self.f_max is not None else sample_rate / 2
            if not 0 <= self.f_min < f_max <= sample_rate / 2:
                raise UserInputError(
                    f"Mel bands need 0 <= f_min < f_max <= {sample_rate / 2:g} Hz (half the "
                    f"sample rate), got f_min={self.f_min}, f_max={self.f_max}."
                )
            empty = np.flatnonzero(mel_filterbank(self, sample_rate, height).sum(axis=0) == 0)
            if empty.size:
                raise UserInputError(
                    f"{height} mel bands of an n_fft={self.n_fft} STFT leave bands "
                    f"{empty.tolist()} without an FFT bin: raise n_fft or lower the height."
                )

    def describe(self, num_samples: int, width: int) -> dict[str, Any]:
        """The settings as stored in the data set's JSON, with the derived hop."""
        described = without_usual_options({**asdict(self), "envelopes": list(self.envelopes)})
        return {**described, "hop_length": self.hop_length(num_samples, width)}

    def power_db(self, audio: np.ndarray, sample_rate: int, height: int, width: int) -> np.ndarray:
        """(notes, samples) audio -> (notes, height, width) power in dB."""
        hop = self.hop_length(audio.shape[1], width)
        if self.pre_emphasis:
            audio = np.concatenate(
                [audio[:, :1], audio[:, 1:] - np.float32(self.pre_emphasis) * audio[:, :-1]],
                axis=1,
            )
        frames = np.lib.stride_tricks.sliding_window_view(audio, self.n_fft, axis=1)
        frames = frames[:, : hop * (width - 1) + 1 : hop]
        window = np.ones(self.n_fft) if self.window == "rectangular" else np.hanning(self.n_fft)
        window = (window / window.sum()).astype(np.float32)
        spectrum = np.fft.rfft(frames * window, axis=2)
        power = spectrum.real**2 + spectrum.imag**2
        if self.kind == "mel":
            power = power @ mel_filterbank(self, sample_rate, height)
        else:
            power = power[:, :, :height]
        return 10.0 * np.log10(np.maximum(power, 1e-20)).transpose(0, 2, 1)

    def to_bytes(self, db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per image: dB (notes, H, W) -> 0..255 bytes (notes, channels, H, W), the
        spectrogram then its envelopes, and the (min, max) dB that the bytes span."""
        high = db.max(axis=(1, 2))
        low = np.maximum(db.min(axis=(1, 2)), high - self.top_db)
        span = high - low
        scale = np.divide(255.0, span, out=np.zeros_like(span), where=span > 0)
        power = 10.0 ** (db / 10.0)
        envelopes = {  # mean power, back in dB
            "temporal": np.broadcast_to(power.mean(axis=1, keepdims=True), db.shape),
            "spectral": np.broadcast_to(power.mean(axis=2, keepdims=True), db.shape),
        }
        images = [db] + [10.0 * np.log10(envelopes[name]) for name in self.envelopes]
        pixels = np.stack(
            [
                np.rint(
                    (np.clip(image, low[:, None, None], high[:, None, None]) - low[:, None, None])
                    * scale[:, None, None]
                ).astype(np.uint8)
                for image in images
            ],
            axis=1,
        )
        return pixels, np.stack([low, high], axis=1).astype(np.float32)


def without_usual_options(spectrogram: dict[str, Any]) -> dict[str, Any]:
    """The spectrogram settings less the options left at "none" (``pre_emphasis`` 0, no
    ``envelopes``): data sets made before these options existed keep their settings hash."""
    usual = {"pre_emphasis": 0.0, "envelopes": []}
    return {
        key: value
        for key, value in spectrogram.items()
        if not (key in usual and (value or usual[key]) == usual[key])
    }


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(settings: Spectrogram, sample_rate: int, bands: int) -> np.ndarray:
    """(n_fft // 2 + 1, bands) triangular filters, evenly spaced on the HTK mel scale."""
    f_max = settings.f_max if settings.f_max is not None else sample_rate / 2
    edges = mel_to_hz(np.linspace(hz_to_mel(settings.f_min), hz_to_mel(f_max), bands + 2))
    bins = np.fft.rfftfreq(settings.n_fft, 1.0 / sample_rate)[:, None]
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
