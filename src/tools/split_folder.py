"""Split a data folder: ``python src/tools/split_folder.py root=<root> [folds=5]``.

Writes ``<root>/splits/`` once (``configs/split.yaml``, ``components.folder_splits``);
the same settings again do nothing, other settings stop with what to do.
"""

from __future__ import annotations

import hydra
import rootutils
from omegaconf import DictConfig

rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.data.components.folder_splits import (  # noqa: E402
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    make_splits,
)
from src.utils.errors import UserInputError, exit_on_user_error  # noqa: E402

KINDS = {"image": IMAGE_EXTENSIONS, "audio": AUDIO_EXTENSIONS}


def split(cfg: DictConfig) -> str:
    if cfg.kind not in KINDS:
        raise UserInputError(f"kind={cfg.kind} must be one of {sorted(KINDS)}.")
    folds = None if cfg.folds in (None, "", "null") else int(cfg.folds)
    splits, written = make_splits(cfg.root, cfg.seed, cfg.val, cfg.test, folds, KINDS[cfg.kind])
    counts = {p.stem: len(p.read_text().splitlines()) for p in sorted(splits.glob("*.txt"))}
    said = "Wrote" if written else "Unchanged (same settings):"
    message = f"{said} {splits}: " + ", ".join(f"{n} {c}" for n, c in counts.items())
    print(message)
    return message


@hydra.main(version_base="1.3", config_path="../../configs", config_name="split.yaml")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    split(cfg)


if __name__ == "__main__":
    main()
