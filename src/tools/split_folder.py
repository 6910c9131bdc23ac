"""Split a data folder: ``python src/tools/split_folder.py root=<root> [folds=5]``.

Writes ``<root>/splits/`` once (``configs/split.yaml``, ``components.folder_splits``);
the same settings again do nothing, other settings stop with what to do.
"""

from __future__ import annotations

import rootutils
from omegaconf import DictConfig

rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.data.components.folder_splits import (  # noqa: E402
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    make_splits,
)
from src.utils.entry_point import entry_point  # noqa: E402
from src.utils.errors import UserInputError  # noqa: E402

KINDS = {"image": IMAGE_EXTENSIONS, "audio": AUDIO_EXTENSIONS}
SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}


def split(cfg: DictConfig) -> str:
    if cfg.kind not in KINDS:
        raise UserInputError(f"kind={cfg.kind} must be one of {sorted(KINDS)}.")
    folds = None if cfg.folds in (None, "", "null") else int(cfg.folds)
    splits, written = make_splits(cfg.root, cfg.seed, cfg.val, cfg.test, folds, KINDS[cfg.kind])
    # train, val, test in the order data flows through them, then any folds
    files = sorted(splits.glob("*.txt"), key=lambda p: (SPLIT_ORDER.get(p.stem, 3), p.stem))
    counts = {p.stem: len(p.read_text().splitlines()) for p in files}
    said = "Wrote" if written else "Unchanged (same settings):"
    message = f"{said} {splits}: " + ", ".join(f"{n} {c}" for n, c in counts.items())
    print(message)
    return message


@entry_point("split.yaml")
def main(cfg: DictConfig) -> None:
    split(cfg)


if __name__ == "__main__":
    main()
