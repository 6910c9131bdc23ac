"""The folder experiments' example folder: written on first use with its split at a path
derived from its settings, reused after, a clash an error; a data.root the user gives is
never written to; a user error met while the config tree is printed is one message."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from src.data.audio_folder_datamodule import AudioFolderDataModule
from src.data.components.example_folders import RECORD, example_folder
from src.data.image_folder_datamodule import ImageFolderDataModule
from src.utils.errors import UserInputError
from tests.conftest import run_cli
from tests.test_cli import assert_clear_failure

NOTES = {"per_class": 8, "sample_rate": 8000, "seconds": 0.25, "seed": 0}


def tiny(epochs: int = 1, train: int = 2, val: int = 1) -> list[str]:
    """Overrides of a short run: a few batches, no loggers, no workers."""
    return [f"trainer.max_epochs={epochs}", f"+trainer.limit_train_batches={train}",
            f"+trainer.limit_val_batches={val}", "+trainer.limit_test_batches=1",
            "data.num_workers=0", "logger=[]"]  # fmt: skip


QUIET = [
    "extras.print_config=false",
    "callbacks.rich_progress_bar=null",
    "+trainer.enable_progress_bar=false",
]


def snapshot(directory: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_written_once_with_its_split_then_reused(tmp_path: Path) -> None:
    root = example_folder("audio", {"dir": str(tmp_path), **NOTES})
    assert root == tmp_path / "notes_wav_8000Hz_0p25s_8pc_seed0"
    classes = sorted(p.name for p in (root / "raw").iterdir())
    assert classes == ["saw_high", "saw_low", "sine_high", "sine_low"]
    assert len(list((root / "raw").rglob("*.wav"))) == 4 * 8
    listed = [(root / "splits" / f"{s}.txt").read_text().split() for s in ("train", "val", "test")]
    assert sum(map(len, listed)) == 32 and not set(listed[0]) & set(listed[2])
    assert json.loads((root / RECORD).read_text())["per_class"] == 8
    assert [p.name for p in tmp_path.iterdir()] == [root.name]  # no partial left behind
    before = snapshot(tmp_path)
    assert example_folder("audio", {"dir": str(tmp_path), **NOTES}) == root
    assert snapshot(tmp_path) == before  # the same settings write nothing
    other = example_folder("audio", {"dir": str(tmp_path), **NOTES, "per_class": 10})
    assert other != root and len(list((other / "raw").rglob("*.wav"))) == 40


@pytest.mark.parametrize("damage", ["other_settings", "no_record"])
def test_a_clash_is_an_error_and_changes_nothing(tmp_path: Path, damage: str) -> None:
    root = example_folder("audio", {"dir": str(tmp_path), **NOTES})
    record = root / RECORD
    if damage == "other_settings":
        record.write_text(json.dumps({**json.loads(record.read_text()), "seed": 3}))
        message = "was written with"
    else:
        record.unlink()
        message = f"holds no {RECORD}"
    before = snapshot(tmp_path)
    with pytest.raises(UserInputError, match=message):
        example_folder("audio", {"dir": str(tmp_path), **NOTES})
    assert snapshot(tmp_path) == before


def test_bad_example_settings_are_one_clear_message(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="takes exactly"):
        example_folder("image", {"dir": str(tmp_path), "image_size": 8})
    with pytest.raises(UserInputError, match="data.example.channels=2"):
        example_folder("image", {"dir": str(tmp_path), "image_size": 8, "channels": 2})
    assert not any(tmp_path.iterdir())


def test_a_data_module_without_root_reads_the_example(tmp_path: Path) -> None:
    example = {"dir": str(tmp_path), "image_size": 8, "channels": 1}
    dm = ImageFolderDataModule(None, image_size=8, channels=1, example=example, num_workers=0)
    assert dm.root == tmp_path / "digits_png_8px_1ch"
    assert dm.spec == {"input_shape": [1, 8, 8], "num_classes": 10}
    dm.setup()
    sizes = {name: len(files) for name, files in dm.files.items()}
    assert sum(sizes.values()) == 1797 and sizes["test"] == pytest.approx(1797 * 0.15, abs=10)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (64, 1, 8, 8) and len(set(y.tolist())) > 5  # shuffled across classes


def test_a_root_the_user_gives_is_never_written_to(tmp_path: Path) -> None:
    mine, examples = tmp_path / "mine", tmp_path / "examples"
    with pytest.raises(UserInputError, match=re.escape(f"{mine / 'raw'} does not exist")):
        AudioFolderDataModule(str(mine), example={"dir": str(examples), **NOTES}, num_workers=0)
    assert not mine.exists() and not examples.exists()
    with pytest.raises(UserInputError, match="data.root is not set"):
        AudioFolderDataModule(None, num_workers=0)


def test_the_users_missing_root_is_one_clear_message(tmp_path: Path) -> None:
    mine, data = tmp_path / "mine", tmp_path / "data"
    done = run_cli(
        "train.py",
        "experiment=image_folder_cnn",
        f"data.root={mine}",
        f"paths.data_dir={data}",
        f"paths.log_dir={tmp_path / 'logs'}",
    )
    assert_clear_failure(done, f"{mine / 'raw'} does not exist", "data.root")
    assert done.stderr.count("Error:") == 1
    assert not mine.exists() and not data.exists()  # no example written, nothing in the root


def test_a_user_error_met_while_the_tree_prints_is_one_message(tmp_path: Path) -> None:
    """The tree resolves ${data_spec:...}, which builds the data module; its error is
    the user's message (exit 1), not an OmegaConf InterpolationResolutionError."""
    missing = tmp_path / "nonexistent"
    done = run_cli("train.py", "data=image_folder", f"data.root={missing}",
                   f"paths.log_dir={tmp_path / 'logs'}", "extras.print_config=true")  # fmt: skip
    assert_clear_failure(done, f"{missing / 'raw'} does not exist")
    assert "Interpolation" not in done.stderr and done.stderr.count("Error:") == 1
    # a multirun records the failed job: its summary names the user's error, not the wrapper
    sweep = tmp_path / "sweep"
    done = run_cli("train.py", "-m", "data=image_folder", f"data.root={missing}",
                   f"hydra.sweep.dir={sweep}", "extras.print_config=true")  # fmt: skip
    summary = (sweep / "multirun_summary.md").read_text()
    assert f"FAILED: UserInputError: {missing / 'raw'} does not exist" in summary, summary
    assert "Interpolation" not in summary


@pytest.mark.slow
def test_each_folder_experiment_runs_from_empty_data_and_log_dirs(tmp_path: Path) -> None:
    """A fresh clone: no data folder, no base run. The image and audio examples are written
    once (the CNN and the ResNet share the digits), and the LoRA experiment trains its
    base on them first; the CNN, trained on a share of the digits, learns them."""
    data, logs = tmp_path / "data", tmp_path / "logs"
    paths = [f"paths.data_dir={data}", f"paths.log_dir={logs}"]
    sweep = tmp_path / "sweep"
    done = run_cli("train.py", "-m", "experiment=image_folder_cnn,image_folder_resnet,"
                   "audio_folder_cnn", f"hydra.sweep.dir={sweep}", *paths, *QUIET,
                   *tiny(epochs=2, train=12, val=4))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in sweep.glob("*/job_result.json")]
    assert sorted(r["status"] for r in results) == ["finished"] * 3, results
    examples = sorted(p.name for p in (data / "examples").iterdir())
    assert examples == ["digits_png_32px_3ch", "notes_wav_8000Hz_0p25s_40pc_seed0"]
    cnn = next(r for r in results if "experiment=image_folder_cnn" in r["overrides"])
    assert cnn["metrics"]["val/acc_best"] > 0.5, cnn  # 24 batches: far above chance (0.1)
    before = snapshot(data)
    base_tiny = "[" + ",".join(f"'{o}'" for o in tiny()) + "]"
    done = run_cli("train.py", "experiment=image_folder_resnet_lora", *paths, *QUIET, *tiny(),
                   f"model.lora.base_overrides={base_tiny}")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert [p.name.split("_")[:3] for p in (logs / "lora_bases").iterdir()] == [
        ["image", "folder", "resnet"]
    ]
    assert {k: v for k, v in snapshot(data).items() if k in before} == before  # reused
