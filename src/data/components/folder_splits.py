"""Split files of a data folder: which files of ``<root>/raw/<class>/`` go where.

Layout (the one image-classification frameworks use)::

    <root>/raw/<class>/<file>        the data; classes are the sub-folder names, sorted
    <root>/splits/train.txt val.txt  one relative path (``<class>/<file>``) per line
    <root>/splits/test.txt           the test set, shared by every fold
    <root>/splits/fold_<k>_train.txt fold_<k>_val.txt   k-fold (train + val dealt in k)
    <root>/splits/settings.json      the settings and file count they were made with

``make_splits`` writes them once (seeded, stratified by class); asked again with
the same settings it does nothing, with other settings it stops and says how to
proceed. It never writes under ``raw/``. Each class's files are put in a seeded
order; its first ``test`` share goes to test and the next ``val`` share to val,
so test.txt depends only on the seed and the test share: a re-split with other
val or fold settings keeps the same test set. The folds are dealt from train +
val by ``components.folds.assign_folds`` (the in-memory modules' k-fold rule).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from src.data.components.folds import assign_folds
from src.utils.errors import UserInputError

SETTINGS = "settings.json"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
AUDIO_EXTENSIONS = (".wav",)


def split_names(num_folds: int | None, fold: int | None) -> tuple[str, str, str]:
    """The file names (without .txt) of train, val and test for a fixed split or a fold."""
    if num_folds is None:
        return "train", "val", "test"
    return f"fold_{fold}_train", f"fold_{fold}_val", "test"


def scan_folder(root: Path, extensions: Sequence[str]) -> tuple[list[str], list[str]]:
    """The sorted class names under ``<root>/raw`` and every data file's relative path
    (``<class>/<file>``, sorted); stops on a missing folder or an empty class."""
    raw = root / "raw"
    if not raw.is_dir():
        raise UserInputError(
            f"{raw} does not exist: a data folder holds its files as <root>/raw/<class>/<file> "
            "(one sub-folder per class). Check data.root (or ROOT=)."
        )
    classes = sorted(p.name for p in raw.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise UserInputError(
            f"{raw} has {len(classes)} class folder(s) ({classes}); classification needs at "
            "least two: put each class's files in its own sub-folder, raw/<class>/<file>."
        )
    files: list[str] = []
    for name in classes:
        found = sorted(
            f"{name}/{p.relative_to(raw / name).as_posix()}"
            for p in (raw / name).rglob("*")
            if p.is_file() and p.suffix.lower() in extensions and not p.name.startswith(".")
        )
        if not found:
            raise UserInputError(
                f"The class folder {raw / name} holds no file ending in {', '.join(extensions)}. "
                "Add its files, or remove the folder if it is not a class."
                + other_kind(raw / name, extensions)
            )
        files += found
    return classes, files


# what a folder of the other kind of files is split with (split_folder.py, make split)
OTHER_KINDS = {
    AUDIO_EXTENSIONS: "WAV files: an audio folder is split with kind=audio "
    "(make split ROOT=<root> KIND=audio)",
    IMAGE_EXTENSIONS: "images: an image folder is split with kind=image "
    "(make split without KIND=audio)",
}


def other_kind(folder: Path, extensions: Sequence[str]) -> str:
    """A hint when ``folder`` holds the files of the other kind: the split was asked for
    images and the folder holds WAV files, or the other way round."""
    for kind, hint in OTHER_KINDS.items():
        if kind != tuple(extensions) and any(p.suffix.lower() in kind for p in folder.rglob("*")):
            return f" It holds {hint}."
    return ""


def settings_of(seed: int, val: float, test: float, folds: int | None) -> dict[str, Any]:
    for name, share in (("val", val), ("test", test)):
        if not 0 < share < 1:
            raise UserInputError(f"The {name} share must be between 0 and 1, got {share}.")
    if val + test >= 1:
        raise UserInputError(f"val ({val}) + test ({test}) leave nothing to train on.")
    if folds is not None and folds < 2:
        raise UserInputError(f"folds={folds}: k-fold needs at least 2 folds (or none).")
    return {"seed": int(seed), "val": float(val), "test": float(test), "folds": folds}


def stratified_parts(files: list[str], settings: dict[str, Any]) -> dict[str, list[str]]:
    """train/val/test (and fold_<k>_train/val) file lists, each sorted."""
    by_class: dict[str, list[str]] = {}
    for f in files:
        by_class.setdefault(f.split("/", 1)[0], []).append(f)
    generator = torch.Generator().manual_seed(settings["seed"])
    parts: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for name, members in by_class.items():
        order = torch.randperm(len(members), generator=generator).tolist()
        n_test = round(len(members) * settings["test"])
        n_val = round(len(members) * settings["val"])
        if min(n_test, n_val) < 1 or len(members) - n_test - n_val < 1:
            raise UserInputError(
                f"Class {name} has {len(members)} files: too few for a train, val and test "
                f"share (test {settings['test']}, val {settings['val']}). Add files or raise "
                "the shares."
            )
        shuffled = [members[i] for i in order]
        parts["test"] += shuffled[:n_test]
        parts["val"] += shuffled[n_test : n_test + n_val]
        parts["train"] += shuffled[n_test + n_val :]
    k = settings["folds"]
    if k is not None:
        pool = sorted(parts["train"] + parts["val"])
        labels = sorted({f.split("/", 1)[0] for f in pool})
        strata = torch.tensor([labels.index(f.split("/", 1)[0]) for f in pool])
        fewest = int(torch.bincount(strata).min())
        if fewest < k:
            raise UserInputError(
                f"folds={k} cannot stratify: a class has only {fewest} files in train + val, "
                f"fewer than one per fold. Use folds={fewest} or fewer."
            )
        assigned = assign_folds(len(pool), k, settings["seed"], strata).tolist()
        for fold in range(k):
            parts[f"fold_{fold}_train"] = [
                f for f, a in zip(pool, assigned, strict=True) if a != fold
            ]
            parts[f"fold_{fold}_val"] = [
                f for f, a in zip(pool, assigned, strict=True) if a == fold
            ]
    return {name: sorted(part) for name, part in parts.items()}


def read_settings(splits: Path) -> dict[str, Any] | None:
    path = splits / SETTINGS
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserInputError(
            f"{path} cannot be read ({error}). Delete {splits} and run the split again."
        ) from error


def make_splits(
    root: str | Path,
    seed: int = 42,
    val: float = 0.15,
    test: float = 0.15,
    folds: int | None = None,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
) -> tuple[Path, bool]:
    """Write the split files of ``root`` once. Returns (splits folder, whether written)."""
    root = Path(root)
    settings = settings_of(seed, val, test, folds)
    splits = root / "splits"
    classes, files = scan_folder(root, extensions)
    existing = read_settings(splits)
    if existing is None and splits.exists() and any(splits.glob("*.txt")):
        raise UserInputError(
            f"{splits} holds split files but no {SETTINGS} (made by hand?): they are used "
            "as they are. To have them made by this tool, move them away first."
        )
    if existing is not None:
        made_with = {key: existing.get(key) for key in settings}
        if made_with != settings:
            raise UserInputError(
                f"{splits} was made with {made_with}, not {settings}; split files are never "
                f"overwritten (runs refer to them). Use those settings, or move {splits} away "
                "and split again (the same seed and test share give the same test.txt)."
            )
        if existing.get("num_files") != len(files) or existing.get("classes") != classes:
            raise UserInputError(
                f"{root / 'raw'} has changed since {splits} was made ({existing.get('num_files')}"
                f" files then, {len(files)} now; classes {existing.get('classes')} then, "
                f"{classes} now). Move {splits} away and split again to include the change."
            )
        return splits, False
    parts = stratified_parts(files, settings)
    partial = root / f".splits.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    for name, part in parts.items():
        (partial / f"{name}.txt").write_text("".join(f"{f}\n" for f in part))
    record = {**settings, "classes": classes, "num_files": len(files)}
    (partial / SETTINGS).write_text(json.dumps(record, indent=2) + "\n")
    if splits.exists():  # an empty or stats-only folder
        for leftover in splits.iterdir():
            shutil.move(str(leftover), partial / leftover.name)
        splits.rmdir()
    os.replace(partial, splits)  # all files appear at once
    return splits, True


def read_split_file(root: Path, name: str, classes: Sequence[str], fix: str) -> list[str]:
    """The relative paths listed in ``<root>/splits/<name>.txt``, each checked to exist."""
    path = root / "splits" / f"{name}.txt"
    if not path.is_file():
        raise UserInputError(f"{path} does not exist. {fix}")
    listed = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not listed:
        raise UserInputError(f"{path} lists no file. {fix}")
    raw = root / "raw"
    known = set(classes)
    for line, rel in enumerate(listed, 1):
        if rel.split("/", 1)[0] not in known or "/" not in rel:
            raise UserInputError(
                f"{path}, line {line}: {rel!r} is not in a class folder of {raw} "
                f"(classes: {list(classes)}). Each line is <class>/<file>."
            )
        if not (raw / rel).is_file():
            raise UserInputError(
                f"{path}, line {line} names {raw / rel}, which does not exist. Restore the "
                f"file, or move {root / 'splits'} away and split again."
            )
    return listed


def check_classes_seen(parts: dict[str, list[str]], path: Path) -> None:
    """Stop when val or test hold a class that the training split never saw."""
    seen = class_set(parts["train"])
    for name in ("val", "test"):
        unseen = sorted(class_set(parts[name]) - seen)
        if unseen:
            raise UserInputError(
                f"The {name} split ({path}) holds classes {unseen} that the training split "
                "has no file of: the model could never predict them. Add training files of "
                "those classes, or split again."
            )


def class_set(files: Iterable[str]) -> set[str]:
    return {f.split("/", 1)[0] for f in files}
