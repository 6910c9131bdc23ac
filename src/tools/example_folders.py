"""Example data folders to try the file-backed path on (no downloads here).

``python src/tools/example_folders.py kind=image root=data/digits_png`` writes
scikit-learn's 1,797 digits as PNG files, ``<root>/raw/<digit>/<n>.png``
(upscaled, RGB); ``kind=audio`` writes short WAV notes rendered by the VIMH
synthesizers, one class per waveform and pitch. An existing folder is left
as it is (nothing is overwritten). The writers live in
``src/data/components/example_folders.py`` (the folder experiments use them too).
"""

from __future__ import annotations

from pathlib import Path

import rootutils
from omegaconf import DictConfig

rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.data.components.example_folders import (  # noqa: E402
    AUDIO_CLASSES,
    write_digit_images,
    write_synth_notes,
)
from src.utils.entry_point import entry_point  # noqa: E402
from src.utils.errors import UserInputError  # noqa: E402

__all__ = ["AUDIO_CLASSES", "main", "write_digit_images", "write_synth_notes"]  # tests use them


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
