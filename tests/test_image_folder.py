"""Image folders: the split tool, the lazily-read data module, its bad-input messages, and
what a CNN learns from scikit-learn's digits written as PNG files."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from src.data.components.folder_splits import AUDIO_EXTENSIONS, make_splits
from src.data.image_folder_datamodule import ImageFolderDataModule
from src.tools.example_folders import write_digit_images, write_synth_notes
from src.tools.split_folder import split
from src.train import train
from src.utils.errors import UserInputError
from tests.conftest import compose_config, run_cli


def tree_digest(folder: Path) -> str:
    """One hash of every file's path and bytes under ``folder``."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def digits_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All 1,797 digits as 32x32 RGB PNGs under raw/<digit>/, split (seed 42)."""
    root = tmp_path_factory.mktemp("digits_png")
    write_digit_images(root, size=32, channels=3)
    make_splits(root)
    return root


@pytest.fixture
def small_png(tmp_path: Path) -> Path:
    """Digits 0, 1, 2 (30 each) as 16x16 RGB PNGs, split."""
    write_digit_images(tmp_path, size=16, channels=3, per_class=30)
    for other in range(3, 10):
        shutil.rmtree(tmp_path / "raw" / str(other))
    make_splits(tmp_path)
    return tmp_path


def module(root: Path, **kwargs) -> ImageFolderDataModule:
    from torchvision.transforms import v2

    size = kwargs.pop("image_size", 16)
    resize = v2.Resize([size, size], antialias=True)
    kwargs.setdefault("transforms", {"train": resize, "eval": resize})
    kwargs.setdefault("num_workers", 0)
    return ImageFolderDataModule(str(root), image_size=size, **kwargs)


# -- the split tool ------------------------------------------------------------------


def test_split_is_stratified_seeded_and_written_once(tmp_path: Path) -> None:
    write_digit_images(tmp_path, size=8, per_class=40)
    before = tree_digest(tmp_path / "raw")
    splits, written = make_splits(tmp_path, seed=3, val=0.25, test=0.25, folds=3)
    assert written
    lists = {p.stem: p.read_text().split() for p in splits.glob("*.txt")}
    assert sorted(lists) == sorted(
        ["train", "val", "test"] + [f"fold_{k}_{s}" for k in range(3) for s in ("train", "val")]
    )
    for name, share in (("test", 10), ("val", 10), ("train", 20)):  # per class of 40
        counts = torch.bincount(torch.tensor([int(f.split("/")[0]) for f in lists[name]]))
        assert counts.tolist() == [share] * 10, name
    everything = set(lists["train"]) | set(lists["val"]) | set(lists["test"])
    assert len(everything) == 400
    pool = set(lists["train"]) | set(lists["val"])
    vals = [set(lists[f"fold_{k}_val"]) for k in range(3)]
    assert set().union(*vals) == pool and sum(len(v) for v in vals) == len(pool)
    for k in range(3):
        assert set(lists[f"fold_{k}_train"]) == pool - vals[k]
    # same settings: a no-op; raw/ untouched
    stamp = (splits / "train.txt").stat().st_mtime_ns
    assert make_splits(tmp_path, seed=3, val=0.25, test=0.25, folds=3) == (splits, False)
    assert (splits / "train.txt").stat().st_mtime_ns == stamp
    assert tree_digest(tmp_path / "raw") == before
    # other settings: an error that says what to do, nothing changed
    snapshot = tree_digest(splits)
    with pytest.raises(UserInputError, match="move .* away and split again"):
        make_splits(tmp_path, seed=3, val=0.25, test=0.25, folds=5)
    assert tree_digest(splits) == snapshot
    # the test set depends on the seed and test share only
    shutil.move(splits, tmp_path / "old_splits")
    make_splits(tmp_path, seed=3, val=0.1, test=0.25)
    assert (splits / "test.txt").read_text() == (tmp_path / "old_splits" / "test.txt").read_text()


def test_split_tool_cli_says_unchanged_and_refuses_a_clash(small_png: Path) -> None:
    cfg = OmegaConf.create({"root": str(small_png), "kind": "image", "seed": 42, "val": 0.15,
                            "test": 0.15, "folds": None})  # fmt: skip
    said = split(cfg)
    assert said.startswith("Unchanged")
    # in the order the data flow through them (was alphabetical: test, train, val)
    assert re.search(r": train \d+, val \d+, test \d+$", said), said
    snapshot = tree_digest(small_png)
    done = run_cli("tools/split_folder.py", f"root={small_png}", "seed=7", timeout=120)
    assert done.returncode == 1
    assert "Error:" in done.stderr and "seed" in done.stderr and "Traceback" not in done.stderr
    assert tree_digest(small_png) == snapshot


def test_empty_class_folder_stops_the_split(small_png: Path) -> None:
    (small_png / "raw" / "empty").mkdir()
    shutil.rmtree(small_png / "splits")
    with pytest.raises(UserInputError, match="empty holds no file"):
        make_splits(small_png)
    assert not (small_png / "splits").exists()


def test_a_split_of_the_other_kind_of_files_says_which_kind_to_ask_for(tmp_path: Path) -> None:
    """make split ROOT=<WAV folder> without KIND=audio said only that a class folder "holds
    no file ending in .png, .jpg, ...", as if it were empty."""
    write_synth_notes(tmp_path / "notes", per_class=2)
    with pytest.raises(UserInputError, match=r"holds no file .* It holds WAV files.*KIND=audio"):
        make_splits(tmp_path / "notes")
    write_digit_images(tmp_path / "pngs", size=8, channels=1, per_class=2)
    with pytest.raises(UserInputError, match=r"holds no file ending in \.wav.*It holds images"):
        make_splits(tmp_path / "pngs", extensions=AUDIO_EXTENSIONS)
    (tmp_path / "pngs" / "raw" / "empty").mkdir()
    with pytest.raises(UserInputError, match=r"not a class\.$"):  # an empty folder: no hint
        make_splits(tmp_path / "pngs")


# -- the data module -----------------------------------------------------------------


def test_batches_mean_std_cached_and_splits_record(small_png: Path) -> None:
    dm = module(small_png)
    dm.setup()
    assert dm.spec == {"input_shape": [3, 16, 16], "num_classes": 3}
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (64, 3, 16, 16) and x.dtype == torch.float32
    # the training split, normalised with its own statistics: mean 0, std 1 per channel
    train = torch.cat([b[0] for b in dm.loader("train", shuffle=False)])
    assert train.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert (train.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-3
    cached = list((small_png / "splits").glob("stats_train_*.json"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    again = module(small_png)
    again.setup()
    assert again.mean == dm.mean and cached[0].stat().st_mtime_ns == stamp
    record = dm.split_record()
    assert record["sizes"] == {"train": 66, "val": 12, "test": 12}  # round(4.5) = 4 per class
    assert all((small_png / "raw" / f).is_file() for f in record["test"])
    assert y.max() < 3


def test_computing_the_mean_std_leaves_the_global_random_state_alone(small_png: Path) -> None:
    """The stats loader drew its base seed from the global RNG: the run that computed them
    (a fresh folder) trained otherwise than the same command after, which read the cache
    (train/loss of epoch 0: 1.7049 against 1.6860, same seed, same files)."""
    torch.manual_seed(0)
    before = torch.get_rng_state()
    fresh = module(small_png)
    fresh.setup()
    assert list((small_png / "splits").glob("stats_train_*.json"))  # computed here
    assert torch.equal(torch.get_rng_state(), before)


def test_corrupt_file_is_named_or_skipped_and_counted(small_png: Path, caplog) -> None:
    bad = small_png / "raw" / "1" / (sorted((small_png / "raw" / "1").iterdir())[0].name)
    bad.write_text("not an image")
    with pytest.raises(UserInputError, match=str(bad.name) + ".*skip_corrupt=true"):
        module(small_png).setup()
    dm = module(small_png, skip_corrupt=True)
    dm.setup()
    assert sum(dm.split_record()["sizes"].values()) == 89
    assert "Skipped 1 unreadable" in caplog.text


def test_truncated_file_found_in_a_worker_is_one_clear_error(small_png: Path) -> None:
    """A file whose header reads but whose pixels do not fails in a loader worker: the
    main process raises one UserInputError naming it."""
    dm = module(small_png, num_workers=1, persistent_workers=False)
    dm.setup()
    name = dm.files["train"][0]
    Image.fromarray(torch.zeros(200, 200, dtype=torch.uint8).numpy()).save(small_png / "raw" / name)
    data = (small_png / "raw" / name).read_bytes()
    (small_png / "raw" / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(UserInputError, match=f"{name}.*cannot be read"):
        for _ in dm.loader("train", shuffle=False):
            pass


def test_split_file_naming_a_missing_file(small_png: Path) -> None:
    listed = (small_png / "splits" / "val.txt").read_text().split()
    (small_png / "raw" / listed[3]).unlink()
    with pytest.raises(UserInputError, match=f"val.txt, line 4 names .*{listed[3]}"):
        module(small_png).setup()


def test_class_in_test_that_training_never_saw(small_png: Path) -> None:
    splits = small_png / "splits"
    train = [f for f in (splits / "train.txt").read_text().split() if not f.startswith("2/")]
    (splits / "train.txt").write_text("\n".join(train) + "\n")
    with pytest.raises(UserInputError, match=r"classes \['2'\] that the training split"):
        module(small_png).setup()


def test_mixed_sizes_without_resize(small_png: Path) -> None:
    name = (small_png / "splits" / "test.txt").read_text().split()[0]
    Image.new("RGB", (20, 24)).save(small_png / "raw" / name)
    with pytest.raises(UserInputError, match="mixed sizes.*data/transforms=default"):
        module(small_png, transforms=None).setup()
    module(small_png).setup()  # with a Resize they train


def test_missing_split_files_say_how_to_make_them(small_png: Path) -> None:
    shutil.rmtree(small_png / "splits")
    with pytest.raises(UserInputError, match=f"make split ROOT={small_png}"):
        module(small_png).setup()
    with pytest.raises(UserInputError, match="FOLDS=3"):
        module(small_png, num_folds=3, fold=0).setup()


def test_too_many_workers_warns_and_runs(small_png: Path, caplog) -> None:
    dm = module(small_png, num_workers=512)
    assert "more than the" in caplog.text and dm.num_workers <= 512
    assert dm.num_workers >= 1


def test_folds_read_their_files(tmp_path: Path) -> None:
    write_digit_images(tmp_path, size=8, per_class=20)
    make_splits(tmp_path, folds=4)
    records = []
    for fold in range(4):
        dm = module(tmp_path, image_size=8, num_folds=4, fold=fold)
        records.append(dm.split_record())
    assert all(r["test"] == records[0]["test"] for r in records)
    assert records[2]["split_files"] == ["fold_2_train", "fold_2_val", "test"]
    with pytest.raises(UserInputError, match="made with folds=4"):
        module(tmp_path, image_size=8, num_folds=5, fold=0).setup()


def test_small_cnn_learns_from_a_png_folder(small_png: Path) -> None:
    """Three digits at 16x16, two epochs: far above chance (1/3)."""
    cfg = compose_config(
        "train.yaml",
        [
            "data=image_folder",
            f"data.root={small_png}",
            "data.image_size=16",
            "data.num_workers=0",
            "data.batch_size=16",
            "model=cnn",
            "trainer.max_epochs=4",
            "logger=none",
            "callbacks=none",
        ],
        small_png / "run",
    )
    metrics, _ = train(cfg)
    assert metrics["test/acc"] >= 0.7
    written = json.loads((small_png / "run" / "splits.json").read_text())
    assert written["sizes"]["test"] == 12 and written["test"][0].count("/") == 1


@pytest.mark.slow
def test_cnn_learns_digits_from_pngs_at_32px(digits_png: Path, tmp_path: Path) -> None:
    """The issue's bar: digits as 32x32 PNGs, a small CNN, a few epochs, test acc >= 0.90,
    decoded in a loader worker."""
    cfg = compose_config(
        "train.yaml",
        [
            "experiment=image_folder_cnn",
            f"data.root={digits_png}",
            "data.num_workers=1",
            "trainer.max_epochs=3",
            "logger=none",
        ],
        tmp_path,
    )
    metrics, _ = train(cfg)
    print(
        f"digits PNGs at 32px, image_folder_cnn, 3 epochs: test/acc={float(metrics['test/acc']):.4f}"
    )
    assert metrics["test/acc"] >= 0.90


def test_classification_report_names_the_folder_classes(small_png: Path) -> None:
    """The default callbacks write a per-class report of the test split; a class the
    model cannot tell apart shows there and in the macro figures."""
    cfg = compose_config(
        "train.yaml",
        [
            "data=image_folder",
            f"data.root={small_png}",
            "data.image_size=16",
            "data.num_workers=0",
            "data.batch_size=16",
            "model=cnn",
            "trainer.max_epochs=3",
            "logger=none",
        ],
        small_png / "run",
    )
    metrics, _ = train(cfg)
    report = json.loads((small_png / "run" / "classification_report.json").read_text())
    per_class = report["classes"]["per_class"]
    assert sorted(per_class) == ["0", "1", "2"]
    macro = report["classes"]["macro"]
    assert abs(macro["recall"] - sum(c["recall"] for c in per_class.values()) / 3) < 1e-6
    assert float(metrics["test/f1_macro"]) == pytest.approx(macro["f1"], abs=1e-6)
    assert macro["f1"] > 0.6  # learnt: far above chance
    assert "macro" in (small_png / "run" / "classification_report.txt").read_text()


class FrozenObjects(torch.utils.data.Dataset):
    """Each sample: how many objects the process's collector has frozen (gc.freeze)."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> int:
        import gc

        return gc.get_freeze_count()


def test_loader_workers_freeze_what_they_inherit(small_png: Path) -> None:
    """A file loader's workers freeze the objects they inherit from the training process
    (otherwise the first full collection in a worker copies every page of them: 155 MiB
    of private memory per worker in benchmarks/folder_memory.py, 17 MiB with the freeze
    and the malloc setting)."""
    dm = module(small_png, num_workers=1)
    loader = dm.train_dataloader()
    dm.datasets["train"] = FrozenObjects()  # the module's loader settings, a probe dataset
    frozen = [int(n) for batch in dm.train_dataloader() for n in batch]
    assert loader.worker_init_fn is not None and min(frozen) > 10_000, frozen
