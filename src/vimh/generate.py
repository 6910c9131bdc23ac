"""Generate a VIMH data set: ``python src/vimh/generate.py [synth=...] [size=...] [seed=...]``.

The data set goes to ``${paths.data_dir}/<name>``, the name derived from the
settings (``configs/generate_vimh.yaml``). Running it again with the same
settings does nothing; see ``src/vimh/generator.py``.
"""

from __future__ import annotations

from pathlib import Path

import rootutils
from omegaconf import DictConfig

rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.utils.entry_point import entry_point  # noqa: E402
from src.utils.errors import UserInputError  # noqa: E402
from src.vimh.generator import generate_vimh  # noqa: E402
from src.vimh.plan import settings_from  # noqa: E402

# the keys of configs/generate_vimh.yaml and the groups it composes
KNOWN_KEYS = {
    "synth",
    "size",
    "seed",
    "sampling",
    "test_fraction",
    "workers",
    "overwrite",
    "task_name",
    "paths",
}


def check_keys(cfg: DictConfig) -> None:
    """``+key=value`` adds any key to the config: refuse those the generator does not read,
    rather than run as if they had been applied."""
    unknown = sorted(set(cfg) - KNOWN_KEYS - {"hydra"})
    if not unknown:
        return
    hint = ""
    if "pickle" in unknown:
        hint = (
            " (NSMT's --pickle: this project writes no pickle files; data=vimh reads the "
            "VIMH binary files this writes, see docs/vimh_format.md)"
        )
    raise UserInputError(
        f"The VIMH generator has no setting {unknown}{hint}. Its settings: "
        f"{sorted(KNOWN_KEYS - {'task_name', 'paths'})}, see configs/generate_vimh.yaml."
    )


def generate(cfg: DictConfig) -> Path:
    """Make (or find) the data set that ``cfg`` describes; returns its directory."""
    check_keys(cfg)
    return generate_vimh(
        settings_from(cfg), cfg.paths.data_dir, overwrite=cfg.overwrite, workers=cfg.workers
    )


@entry_point("generate_vimh.yaml")
def main(cfg: DictConfig) -> None:
    generate(cfg)


if __name__ == "__main__":
    main()
