"""Synthesizers that render many notes at once, one row of audio per note.

Each synthesizer takes one array per parameter (a value per note) and returns
float32 audio of shape (notes, samples). Everything is vectorised over notes:
only the ladder filter's recursion loops, and it loops over time steps, each
step updating all notes together. A synthesizer lists its parameters with a
description; the presets in ``configs/synth/`` say which vary and over what
range, and the descriptions go into the data set's JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from src.utils.errors import UserInputError

Params = Mapping[str, np.ndarray]

NOTE = {
    "note_number": "pitch as a MIDI note number (69 = A4 = 440 Hz)",
    "note_velocity": "MIDI velocity; amplitude (velocity / 127)^2, so 40..127 spans 20 dB",
}


@runtime_checkable
class Synthesizer(Protocol):
    """What the generator needs from a synthesizer."""

    #: parameter name -> description (with its unit)
    parameters: dict[str, str]

    def render(self, params: Params, sample_rate: int, num_samples: int) -> np.ndarray:
        """Float32 audio (notes, num_samples) from one value per note of each parameter."""
        ...


def column(values: np.ndarray) -> np.ndarray:
    """A per-note value as a (notes, 1) float64 column that broadcasts over time."""
    return np.asarray(values, dtype=np.float64)[:, None]


def sawtooth(note_number: np.ndarray, sample_rate: int, num_samples: int) -> np.ndarray:
    """Band-limited sawtooth (PolyBLEP), starting at phase 0.5 so that it starts at zero.

    The naive ramp aliases audibly at 8 kHz; PolyBLEP smooths each jump with a
    two-sample polynomial. The jumps are sparse, so the correction is computed
    at their positions only. The phase is accumulated in float64 (a float32
    ramp over thousands of cycles would jitter), the rest is float32.
    """
    freq = 440.0 * 2.0 ** ((column(note_number) - 69.0) / 12.0)
    step = freq / sample_rate  # phase increment per sample (cycles)
    cycles = step * np.arange(num_samples) + 0.5
    cycles -= np.floor(cycles)
    phase = cycles.astype(np.float32)
    wave = phase * np.float32(2.0)
    wave -= 1.0
    step = step.astype(np.float32)
    rows, cols = np.nonzero(phase < step)  # the sample just after a jump
    t = phase[rows, cols] / step[rows, 0]
    wave[rows, cols] -= 2.0 * t - t * t - 1.0
    rows, cols = np.nonzero(phase > 1.0 - step)  # the sample just before one
    t = (phase[rows, cols] - 1.0) / step[rows, 0]
    wave[rows, cols] -= t * t + 2.0 * t + 1.0
    return wave


def velocity_gain(note_velocity: np.ndarray) -> np.ndarray:
    return (column(note_velocity) / 127.0) ** 2


class Sawtooth:
    """A sawtooth note that decays exponentially: pitch, loudness and decay time."""

    parameters = {
        **NOTE,
        "log10_decay_time": "log10 of the time (s) the amplitude takes to fall by 60 dB",
    }

    def render(self, params: Params, sample_rate: int, num_samples: int) -> np.ndarray:
        t = np.arange(num_samples, dtype=np.float32) / np.float32(sample_rate)
        # 60 dB in decay_time seconds: exp(-ln(1000) t / decay_time)
        rate = (np.log(1000.0) / 10.0 ** column(params["log10_decay_time"])).astype(np.float32)
        envelope = np.exp(-rate * t)
        envelope *= velocity_gain(params["note_velocity"]).astype(np.float32)
        wave = sawtooth(params["note_number"], sample_rate, num_samples)
        wave *= envelope
        return wave


def adsr(params: Params, sample_rate: int, num_samples: int) -> np.ndarray:
    """Linear attack-decay-sustain-release envelope (0..1), released at ``note_duration``."""
    t = np.arange(num_samples) / sample_rate
    attack = np.maximum(column(params["filter_env_attack"]), 1e-4)
    decay = np.maximum(column(params["filter_env_decay"]), 1e-4)
    sustain = column(params["filter_env_sustain"])
    release = np.maximum(column(params["filter_env_release"]), 1e-4)
    note_off = column(params["note_duration"])

    def held(time: np.ndarray) -> np.ndarray:  # the envelope while the key is down
        rise = time / attack
        fall = 1.0 - (1.0 - sustain) * (time - attack) / decay
        return np.where(time < attack, rise, np.maximum(fall, sustain))

    released = held(note_off) * np.clip(1.0 - (t - note_off) / release, 0.0, 1.0)
    return np.where(t < note_off, held(t), released)


def ladder(
    audio: np.ndarray, cutoff: np.ndarray, resonance: np.ndarray, sample_rate: int
) -> np.ndarray:
    """Moog-style 4-pole low-pass: four one-pole stages with resonance feedback.

    Args:
        audio: (notes, samples) input.
        cutoff: (notes, samples) cutoff in Hz (it may move every sample).
        resonance: (notes,) 0..1; the output is fed back 4x this, inverted, into
            the input, which self-oscillates near 1. A tanh on the input keeps
            the loop bounded and adds the ladder's soft saturation.

    The recursion runs over time steps in Python, each step updating all notes
    in place (time-major copies keep every step's slice contiguous).
    """
    cutoff = np.clip(cutoff, 20.0, 0.45 * sample_rate)
    coefficient = (1.0 - np.exp(-2.0 * np.pi * cutoff / sample_rate)).astype(np.float32).T.copy()
    source = np.ascontiguousarray(audio.T, dtype=np.float32)
    feedback = (4.0 * np.asarray(resonance, dtype=np.float32)).astype(np.float32)
    out = np.empty_like(source)
    notes = source.shape[1]
    s1, s2, s3, s4, u, d = (np.zeros(notes, np.float32) for _ in range(6))
    for n in range(source.shape[0]):
        g = coefficient[n]
        np.multiply(s4, feedback, out=u)
        np.subtract(source[n], u, out=u)
        np.tanh(u, out=u)
        for stage_in, stage in ((u, s1), (s1, s2), (s2, s3), (s3, s4)):
            np.subtract(stage_in, stage, out=d)
            d *= g
            stage += d
        out[n] = s4
    return np.ascontiguousarray(out.T)


class MoogFilter:
    """A held sawtooth note through a resonant ladder filter whose cutoff an ADSR moves.

    The cutoff at time t is ``filter_cutoff * 2 ** (filter_env_amount * env(t))``:
    the envelope opens the filter by up to ``filter_env_amount`` octaves. The
    amplitude stays constant, so every envelope stage shows in the spectrum's
    brightness; the velocity scales the output (it is a level, not a timbre).
    """

    parameters = {
        **NOTE,
        "note_duration": "seconds from note-on to note-off (the filter envelope's release)",
        "filter_cutoff": "cutoff of the ladder filter with the envelope at zero (Hz)",
        "filter_resonance": "resonance 0..1 (feedback 4x this; self-oscillates near 1)",
        "filter_env_attack": "filter envelope attack time (s)",
        "filter_env_decay": "filter envelope decay time from peak to sustain (s)",
        "filter_env_sustain": "filter envelope sustain level 0..1",
        "filter_env_release": "filter envelope release time after note-off (s)",
        "filter_env_amount": "octaves the envelope's peak raises the cutoff",
    }

    def render(self, params: Params, sample_rate: int, num_samples: int) -> np.ndarray:
        envelope = adsr(params, sample_rate, num_samples)
        cutoff = column(params["filter_cutoff"]) * 2.0 ** (
            column(params["filter_env_amount"]) * envelope
        )
        source = 0.5 * sawtooth(params["note_number"], sample_rate, num_samples)
        filtered = ladder(source, cutoff, params["filter_resonance"], sample_rate)
        return filtered * velocity_gain(params["note_velocity"]).astype(np.float32)


def note_frequency(note_number: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(note_number, dtype=np.float64) - 69.0) / 12.0)


class PluckedString:
    """A plucked string (Karplus-Strong, the Synthesis ToolKit's plucked-string family).

    The string is a delay line of one period fed back through a loss filter
    ``(1 - S) + S z^-1`` and a first-order allpass that supplies the fraction of
    a sample the period needs (unity gain at every frequency, so high notes stay in
    tune without the extra loss linear interpolation would add). The loss at the
    fundamental is set from ``log10_decay_time`` (Jaffe and Smith's decay
    stretching): ``S`` as small as the decay allows, with loop gain 1; where even
    ``S = 0.5`` loses too little, a loop gain below 1 adds the rest. Higher
    harmonics always die faster than the fundamental, as on a real string.
    The excitation is the string's shape at the pluck, a triangle peaking at
    ``pluck_position`` along the string: near the end (0.05) bright, at the middle
    (0.5) hollow (no even harmonics). Deterministic: no noise burst.
    """

    parameters = {
        **NOTE,
        "log10_decay_time": "log10 of the time (s) the fundamental takes to fall by 60 dB",
        "pluck_position": "where the string is plucked, as a share of its length (0..0.5)",
    }

    def render(self, params: Params, sample_rate: int, num_samples: int) -> np.ndarray:
        freq = note_frequency(params["note_number"])
        period = sample_rate / freq  # samples per cycle: the loop's whole delay
        stretch, gain = self.loss(freq, params["log10_decay_time"], sample_rate)
        whole = np.floor(period - stretch - 0.1).astype(np.int64)
        if whole.min() < 2:
            raise UserInputError(
                f"note frequency {freq.max():.0f} Hz is too high for {sample_rate} Hz: "
                "the string would be shorter than two samples. Lower the preset's "
                "note_number range or raise its sample_rate."
            )
        fraction = period - stretch - whole  # the allpass's delay, 0.1..1.1 samples
        allpass = ((1.0 - fraction) / (1.0 + fraction)).astype(np.float32)
        near = (gain * (1.0 - stretch)).astype(np.float32)
        far = (gain * stretch).astype(np.float32)
        notes = len(freq)
        lead = int(whole.max()) + 1  # zeros in front, so that y[n - whole - 1] always exists
        out = np.zeros((lead + num_samples, notes), np.float32)
        out[:lead] = self.pluck_shape(whole, np.asarray(params["pluck_position"]), lead)
        cols = np.arange(notes)
        lost = np.zeros(notes, np.float32)  # the loss filter's previous output
        passed = np.zeros(notes, np.float32)  # the allpass's previous output
        for n in range(lead, lead + num_samples):
            rows = n - whole  # one period back, per note
            filtered = near * out[rows, cols] + far * out[rows - 1, cols]
            passed = allpass * (filtered - passed) + lost
            lost = filtered
            out[n] = passed
        audio = np.ascontiguousarray(out[lead:].T)
        audio *= velocity_gain(params["note_velocity"]).astype(np.float32)
        return audio

    @staticmethod
    def loss(
        freq: np.ndarray, log10_decay_time: np.ndarray, sample_rate: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(S, loop gain) per note: the fundamental loses 60 dB in the decay time."""
        trips = freq * 10.0 ** np.asarray(log10_decay_time, dtype=np.float64)
        target = 10.0 ** (-3.0 / trips)  # the fundamental's gain per trip round the loop
        one_minus_cos = 1.0 - np.cos(2.0 * np.pi * freq / sample_rate)
        # |(1 - S) + S e^{-jw}|^2 = 1 - 2 S (1 - S) (1 - cos w): solve for S, or take 0.5
        product = (1.0 - target**2) / (2.0 * one_minus_cos)
        stretch = np.where(
            product < 0.25, 0.5 * (1.0 - np.sqrt(1.0 - 4.0 * np.minimum(product, 0.25))), 0.5
        )
        at_half = np.sqrt(1.0 - 0.5 * one_minus_cos)
        gain = np.where(product < 0.25, 1.0, target / at_half)
        return stretch, np.minimum(gain, 0.99999)  # a hair below 1: nothing rings forever

    @staticmethod
    def pluck_shape(whole: np.ndarray, position: np.ndarray, lead: int) -> np.ndarray:
        """(lead, notes): each note's string shape (a triangle, peak 1, mean removed),
        one period long, right-aligned so the loop reads it as the last period."""
        shape = np.zeros((lead, len(whole)), np.float32)
        for length in np.unique(whole):
            chosen = np.nonzero(whole == length)[0]
            x = ((np.arange(length) + 0.5) / length)[:, None]  # along the string, 0..1
            peak = np.clip(position[chosen], 0.01, 0.99)[None, :]
            triangle = np.where(x < peak, x / peak, (1 - x) / (1 - peak))
            triangle -= triangle.mean(axis=0, keepdims=True)  # no DC to ring on
            shape[lead - length :, chosen] = triangle
        return shape
