"""Generate a VIMH data set: ``python src/vimh/generate.py [synth=...] [size=...] [seed=...]``.

The data set goes to ``${paths.data_dir}/<name>``, the name derived from the
settings (``configs/generate_vimh.yaml``). Running it again with the same
settings does nothing; see ``src/vimh/generator.py``.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import rootutils
from omegaconf import DictConfig

rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.utils.errors import exit_on_user_error  # noqa: E402
from src.vimh.generator import generate_vimh, settings_from  # noqa: E402


def generate(cfg: DictConfig) -> Path:
    """Make (or find) the data set that ``cfg`` describes; returns its directory."""
    return generate_vimh(
        settings_from(cfg), cfg.paths.data_dir, overwrite=cfg.overwrite, workers=cfg.workers
    )


@hydra.main(version_base="1.3", config_path="../../configs", config_name="generate_vimh.yaml")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    generate(cfg)


if __name__ == "__main__":
    main()
