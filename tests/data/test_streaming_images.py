"""Image shards (src/tools/to_shards.py of data=image_folder): the images are stored uint8
with the source's mean/std; data=streaming augments each training sample in the loader
workers with data/transforms (the eval pipeline for val and test, deterministic), a run
from augmented shards learns, and src/eval.py run_dir=<that run> tests it again."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from src.data.components.folder_splits import make_splits
from src.tools.example_folders import write_digit_images
from src.utils.errors import UserInputError
from tests.conftest import ROOT, compose_config
from tests.data.test_streaming import convert


@pytest.fixture(scope="module")
def image_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Digits as 16x16 RGB PNGs (30 per class), converted: 220 / 40 / 40 samples."""
    tmp = tmp_path_factory.mktemp("image_shards")
    write_digit_images(tmp / "images", size=16, channels=3, per_class=30)
    make_splits(tmp / "images")
    return convert(tmp / "shards", "data=image_folder", f"data.root={tmp / 'images'}",
                   "data.image_size=16", "data.num_workers=0")  # fmt: skip


def streaming(shards: Path, *overrides: str) -> list[str]:
    return ["data=streaming", f"data.input_dir={shards}", "data.image_size=16", "logger=none",
            *overrides]  # fmt: skip


def datamodule(shards: Path, tmp_path: Path, *overrides: str):
    import hydra

    more = ["data.shuffle_seed=7", "data.num_workers=1", *overrides]
    return hydra.utils.instantiate(
        compose_config("train.yaml", streaming(shards, *more), tmp_path).data
    )


def batches(loader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.clone(), y.clone()) for x, y in loader]


def test_image_shards_keep_uint8_images_and_the_source_statistics(image_shards: Path) -> None:
    meta = json.loads((image_shards / "shards.json").read_text())
    assert meta["spec"] == {"input_shape": [3, 16, 16], "num_classes": 10}
    mean, std = meta["images"]["mean"], meta["images"]["std"]
    assert len(mean) == len(std) == 3 and 0 < mean[0] < 1 and 0 < std[0] < 1


def test_strong_augmentation_changes_training_inputs_not_eval_inputs(
    image_shards: Path, tmp_path: Path
) -> None:
    """Same shuffle seed, so both modules read the same samples in the same order (in one
    loader worker): with data/transforms=strong most training inputs differ from the
    stored image (and between epochs); val and test inputs are the stored images, the
    same in every pass."""
    plain = datamodule(image_shards, tmp_path / "plain")
    strong = datamodule(image_shards, tmp_path / "strong", "data/transforms=strong")
    (px, py), *_ = batches(plain.train_dataloader())
    first, *_ = batches(strong.train_dataloader())
    assert torch.equal(py, first[1])  # the same samples
    changed = (px - first[0]).flatten(1).abs().amax(1) > 1e-3
    assert changed.float().mean() >= 0.6, changed.float().mean()
    assert px.mean().abs() < 0.3 and 0.7 < px.std() < 1.3  # normalised by the source's stats
    for split in ("val", "test"):
        once = batches(strong.loader(split))
        again = batches(strong.loader(split))
        stored = batches(plain.loader(split))
        for (x1, y1), (x2, _), (x3, y3) in zip(once, again, stored, strict=True):
            assert torch.equal(x1, x2) and torch.equal(x1, x3) and torch.equal(y1, y3)


def test_transforms_that_change_the_image_size_are_one_message(
    image_shards: Path, tmp_path: Path
) -> None:
    dm = datamodule(image_shards, tmp_path, "data/transforms=default", "data.image_size=24")
    with pytest.raises(UserInputError, match="16x16 images into 24x24.*data.image_size=16"):
        dm.setup()


def test_an_image_size_no_transform_makes_is_one_message(
    image_shards: Path, tmp_path: Path
) -> None:
    """Without data/transforms the shards' images are served as stored: a data.image_size
    other than theirs trained at their size without a word (README: it is checked)."""
    dm = datamodule(image_shards, tmp_path, "data.image_size=28")
    with pytest.raises(UserInputError, match="image_size=28, but the shards hold 16x16 images"):
        dm.setup()
    datamodule(image_shards, tmp_path / "right", "data.image_size=16").setup()


def test_transforms_on_shards_that_hold_ready_samples_are_one_message(tmp_path: Path) -> None:
    shards = convert(tmp_path / "digits")  # data=digits: float samples, not images
    dm = datamodule(shards, tmp_path / "run", "data/transforms=light", "data.image_size=8")
    with pytest.raises(UserInputError, match="apply to shards of image folders"):
        dm.setup()


def metric_of(name: str, output: str) -> float:
    """The last ``name=<value>`` a run printed ("Test metrics: test/acc=0.9111, ...")."""
    found = re.findall(rf"{name}=([0-9.]+)", output)
    assert found, output[-3000:]
    return float(found[-1])


@pytest.mark.slow
def test_a_run_from_augmented_shards_learns_and_eval_py_tests_it(
    image_shards: Path, tmp_path: Path
) -> None:
    """The command lines: train.py on the shards with data/transforms=strong (per sample,
    in 1 worker), then src/eval.py run_dir=<the run>, which rebuilds the streaming data
    module (eval pipeline) from the run's saved config and tests its best checkpoint."""
    run = tmp_path / "run"
    common = ["extras.print_config=false"]
    trained = subprocess.run(
        [sys.executable, "src/train.py", *streaming(image_shards, "data/transforms=strong"),
         "data.num_workers=1", "model=cnn", "trainer.max_epochs=10", f"hydra.run.dir={run}",
         "~callbacks.rich_progress_bar", "+trainer.enable_progress_bar=false", *common],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    accuracy = metric_of("test/acc", trained.stdout)
    print(f"digits 16px shards, data/transforms=strong, cnn, 10 epochs: test/acc={accuracy:.3f}")
    assert accuracy >= 0.5  # chance is 0.10 (strong flips and crops 16px digits hard)
    evaluated = subprocess.run(
        [sys.executable, "src/eval.py", f"run_dir={run}", f"hydra.run.dir={tmp_path / 'eval'}",
         *common],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert metric_of("test/acc", evaluated.stdout) == accuracy
    assert metric_of("test/loss", evaluated.stdout) == metric_of("test/loss", trained.stdout)


def test_a_folder_larger_than_litdatas_shuffle_window_streams_its_classes_mixed(
    tmp_path: Path,
) -> None:
    """A folder lists its files class by class, and litdata shuffles only within windows of
    256 samples of a chunk: the conversion writes the training split in a seeded random
    order, so the first 100 training samples of an epoch hold every class (written in the
    folder's order they held the 2-3 classes of the window they came from)."""
    write_digit_images(tmp_path / "images", size=8, channels=1, per_class=70)
    make_splits(tmp_path / "images")
    shards = convert(tmp_path / "shards", "data=image_folder", f"data.root={tmp_path / 'images'}",
                     "data.image_size=8", "data.channels=1", "data.num_workers=0")  # fmt: skip
    assert json.loads((shards / "shards.json").read_text())["sizes"]["train"] > 256
    import hydra

    cfg = compose_config(
        "train.yaml",
        ["data=streaming", f"data.input_dir={shards}", "data.image_size=8", "data.num_workers=0",
         "data.shuffle_seed=7"],
        tmp_path / "run",
    )  # fmt: skip
    labels = torch.cat(
        [y for _, y in batches(hydra.utils.instantiate(cfg.data).train_dataloader())]
    )
    assert sorted(set(labels[:100].tolist())) == list(range(10)), labels[:100].tolist()
