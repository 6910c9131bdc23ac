"""Example data folders to try the file-backed path on (no downloads here).

``python src/tools/example_folders.py kind=image root=data/digits_png`` writes
scikit-learn's 1,797 digits as PNG files, ``<root>/raw/<digit>/<n>.png``
(upscaled, RGB); ``kind=audio`` writes short WAV notes rendered by the VIMH
synthesizers, one class per waveform and pitch. An existing folder is left
as it is (nothing is overwritten).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rootutils
from omegaconf import DictConfig

rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.utils.entry_point import entry_point  # noqa: E402
from src.utils.errors import UserInputError  # noqa: E402

# the audio classes: (waveform, MIDI note)
AUDIO_CLASSES = {"saw_low": ("saw", 48), "saw_high": ("saw", 67), "sine_low": ("sine", 48),
                 "sine_high": ("sine", 67)}  # fmt: skip


def write_digit_images(
    root: str | Path, size: int = 32, channels: int = 3, per_class: int | None = None
) -> Path:
    """The digits as ``size`` x ``size`` PNGs (nearest-neighbour upscaled, grey in
    ``channels`` channels) under ``<root>/raw/<digit>/``; ``per_class`` keeps the first ones."""
    from PIL import Image
    from sklearn.datasets import load_digits

    raw = Path(root) / "raw"
    digits = load_digits()
    counts: dict[int, int] = {}
    for number, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        label = int(label)
        if per_class is not None and counts.get(label, 0) >= per_class:
            continue
        counts[label] = counts.get(label, 0) + 1
        pixels = Image.fromarray((image * (255 / 16)).astype(np.uint8), mode="L")
        pixels = pixels.resize((size, size), Image.Resampling.NEAREST)
        if channels == 3:
            pixels = pixels.convert("RGB")
        (raw / str(label)).mkdir(parents=True, exist_ok=True)
        pixels.save(raw / str(label) / f"{number:04d}.png")
    return raw


def write_synth_notes(
    root: str | Path, per_class: int = 40, sample_rate: int = 8000, seconds: float = 0.25,
    seed: int = 0,
) -> Path:  # fmt: skip
    """WAV notes under ``<root>/raw/<class>/``: sawtooth (``vimh.synths.sawtooth``) or
    sine at a low or a high pitch, each with a random loudness, detune and decay."""
    from scipy.io import wavfile

    from src.vimh.synths import sawtooth

    raw = Path(root) / "raw"
    rng = np.random.default_rng(seed)
    num_samples = round(seconds * sample_rate)
    t = np.arange(num_samples) / sample_rate
    for name, (wave, note) in AUDIO_CLASSES.items():
        notes = note + rng.uniform(-0.5, 0.5, per_class)
        if wave == "saw":
            audio = sawtooth(notes, sample_rate, num_samples).astype(np.float64)
        else:
            freq = 440.0 * 2.0 ** ((notes[:, None] - 69.0) / 12.0)
            audio = np.sin(2 * np.pi * freq * t)
        gain = rng.uniform(0.2, 0.9, (per_class, 1))
        decay = np.exp(-t / rng.uniform(0.05, 0.5, (per_class, 1)))
        audio = (audio * gain * decay * 32767).astype(np.int16)
        (raw / name).mkdir(parents=True, exist_ok=True)
        for number, row in enumerate(audio):
            wavfile.write(raw / name / f"{number:04d}.wav", sample_rate, row)
    return raw


@entry_point("example_folder.yaml")
def main(cfg: DictConfig) -> None:
    raw = Path(cfg.root) / "raw"
    if raw.exists():
        print(f"{raw} exists: left as it is.")
        return
    if cfg.kind == "image":
        write_digit_images(cfg.root, cfg.image_size, cfg.channels)
    elif cfg.kind == "audio":
        write_synth_notes(cfg.root, cfg.per_class, cfg.sample_rate)
    else:
        raise UserInputError(f"kind={cfg.kind} must be image or audio.")
    print(f"Wrote {sum(1 for p in raw.rglob('*') if p.is_file())} files under {raw}")


if __name__ == "__main__":
    main()
