"""Streaming shards: digits converted by src/tools/to_shards.py train a real model through
data=streaming, and src/eval.py run_dir= tests it again; a conversion is never changed; a
run resumed mid-epoch ends exactly where the uninterrupted run ends; a wrong input_dir is
one message; litdata loads only when used. Image shards: tests/data/test_streaming_images.py."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from src.eval import evaluate
from src.train import train
from src.utils.errors import UserInputError, user_error_in
from tests.conftest import CONFIGS, ROOT, compose_config, save_run_config

QUIET = ["logger=none", "seed=3"]


def convert(out: Path, *overrides: str) -> Path:
    """src/tools/to_shards.py in-process on its root config."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from src.tools.to_shards import convert as to_shards

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose("to_shards.yaml", overrides=[f"output_dir={out}", *overrides])
    return to_shards(cfg)


def files_of(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def digits_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert(tmp_path_factory.mktemp("shards") / "digits")


def streaming(shards: Path, *overrides: str) -> list[str]:
    return ["data=streaming", f"data.input_dir={shards}", *QUIET, *overrides]


def test_shards_hold_each_split_of_the_data_module(digits_shards: Path) -> None:
    meta = json.loads((digits_shards / "shards.json").read_text())
    assert meta["sizes"] == {"train": 1077, "val": 360, "test": 360}
    assert meta["spec"] == {"input_shape": [1, 8, 8], "num_classes": 10}
    for split in ("train", "val", "test"):
        assert (digits_shards / split / "index.json").is_file()
        assert list((digits_shards / split).glob("chunk-*.bin"))
    assert not list(digits_shards.parent.glob(".digits.partial-*"))  # renamed into place


def test_a_conversion_leaves_ctrl_c_as_it_was(tmp_path: Path) -> None:
    # litdata's optimize sets a SIGINT handler that calls os._exit(0) and keeps it set:
    # a later Ctrl-C in the same process would end it silently with status 0
    before = signal.getsignal(signal.SIGINT)
    convert(tmp_path / "digits")
    assert signal.getsignal(signal.SIGINT) is before


def test_streaming_batches_are_the_source_samples(digits_shards: Path, tmp_path: Path) -> None:
    import hydra

    cfg = compose_config("train.yaml", streaming(digits_shards, "data.num_workers=0"), tmp_path)
    dm = hydra.utils.instantiate(cfg.data)
    source = hydra.utils.instantiate(compose_config("train.yaml", [], tmp_path).data)
    source.setup()
    x, y = next(iter(dm.val_dataloader()))  # val is not shuffled: the source's order
    sx, sy = source.splits["val"]
    assert torch.equal(x, sx[: len(x)]) and torch.equal(y, sy[: len(y)])
    assert dm.spec == {"input_shape": [1, 8, 8], "num_classes": 10}


def test_an_image_folder_converts_decoded_as_for_evaluation(tmp_path: Path) -> None:
    """The file-backed path converts too: each split's images decoded by the folder
    module's eval pipeline (train included: no augmentation written once), kept uint8;
    without data/transforms the reader scales and normalises them as the source does."""
    import hydra

    from src.data.components.folder_splits import make_splits
    from src.tools.example_folders import write_digit_images
    from src.tools.to_shards import sample_order

    images = tmp_path / "images"
    write_digit_images(images, size=16, channels=3, per_class=6)
    make_splits(images)
    folder = ["data=image_folder", f"data.root={images}", "data.image_size=16",
              "data.num_workers=0", "data/transforms=strong"]  # fmt: skip
    shards = convert(tmp_path / "shards", *folder)
    at_16 = streaming(shards, "data.num_workers=0", "data.image_size=16")  # the shards' size
    cfg = compose_config("train.yaml", at_16, tmp_path / "r")
    dm = hydra.utils.instantiate(cfg.data)
    source = hydra.utils.instantiate(compose_config("train.yaml", folder, tmp_path / "s").data)
    assert dm.spec == source.spec and dm.classes == source.classes == [str(d) for d in range(10)]
    source.setup()
    dm.setup()
    # the training split is written in train_order_seed's order: its first sample is
    first = sample_order(len(source.files["train"]), 0)[0]
    stored = source.shard_dataset("train")[first]
    assert stored[0].dtype == torch.uint8 and tuple(stored[0].shape) == (3, 16, 16)
    x, y = dm.data_train[0]  # by index: the order written
    want = source.make_dataset("test", source.files["train"])[first]  # eval pipeline, normalised
    assert torch.equal(x, want[0]) and int(y) == int(want[1]) == int(stored[1])
    x, y = next(iter(dm.loader("test")))
    wx, wy = next(iter(source.loader("test", shuffle=False, workers=0)))
    assert torch.equal(x, wx[: len(x)]) and torch.equal(y, wy[: len(y)])


def test_a_model_trained_from_shards_learns(digits_shards: Path, tmp_path: Path, recwarn) -> None:
    """... and src/eval.py run_dir=<the run> rebuilds the streaming data module from the
    run's config and tests the best checkpoint: the same test figures as the run's.
    Lightning's warning that an IterableDataset's length may be wrong is not shown:
    litdata's is exact."""
    overrides = streaming(digits_shards, "trainer.max_epochs=4", "data.num_workers=1")
    cfg = compose_config("train.yaml", overrides, tmp_path / "run")
    save_run_config(cfg, tmp_path / "run")  # as Hydra saves it: what run_dir= reads back
    metrics, _ = train(cfg)
    assert not [w for w in recwarn if "`IterableDataset` has `__len__`" in str(w.message)]
    assert float(metrics["test/acc"]) >= 0.85  # chance is 0.10
    assert json.loads((tmp_path / "run" / "splits.json").read_text())["sizes"]["train"] == 1077
    evaluated, objects = evaluate(
        compose_config("eval.yaml", [f"run_dir={tmp_path / 'run'}"], tmp_path / "eval")
    )
    assert type(objects["datamodule"]).__name__ == "StreamingDataModule"
    assert objects["datamodule"].input_dir == str(digits_shards)
    for key in ("test/acc", "test/loss"):
        assert float(evaluated[key]) == pytest.approx(float(metrics[key]), abs=1e-6), key


def test_the_same_conversion_again_is_a_no_op(digits_shards: Path, capsys) -> None:
    before = files_of(digits_shards)
    convert(digits_shards, "data.batch_size=128")  # a loader setting: the same samples
    assert "Unchanged" in capsys.readouterr().out
    assert files_of(digits_shards) == before


def test_another_conversion_into_the_folder_is_refused(digits_shards: Path) -> None:
    before = files_of(digits_shards)
    with pytest.raises(UserInputError, match=r"differ in data.invert.*delete"):
        convert(digits_shards, "data.invert=true")
    assert files_of(digits_shards) == before


def test_a_folder_that_is_not_a_conversion_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my data")
    with pytest.raises(UserInputError, match="not a shard folder"):
        convert(tmp_path / "mine")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(("out", "said"), [("", "is not set"), ("s3://bucket/x", "object storage")])
def test_an_output_dir_that_cannot_be_written_is_one_message(out: str, said: str) -> None:
    with pytest.raises(UserInputError, match=said):
        convert(out)  # type: ignore[arg-type]


@pytest.mark.parametrize("what", ["missing", "not_shards"])
def test_a_bad_input_dir_is_one_message(what: str, tmp_path: Path) -> None:
    folder = tmp_path / "nowhere"
    if what == "not_shards":
        folder.mkdir()
    cfg = compose_config("train.yaml", streaming(folder), tmp_path / "run")
    with pytest.raises(Exception) as caught:  # Hydra's resolver may wrap it
        train(cfg)
    error = user_error_in(caught.value)
    assert error is not None, caught.value
    said = "does not exist" if what == "missing" else "has no shards.json"
    assert said in str(error) and "to_shards.py" in str(error)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_litdata_is_not_imported_at_start_up() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "src/train.py", "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "streaming" in done.stdout  # the option is listed
    assert "litdata" not in done.stderr


def _signal_at(epoch: int, batch: int, marker: Path) -> list[str]:
    key = "+callbacks.signal_at"
    return [
        f"{key}._target_=tests.signal_callback.SignalAt",
        f"{key}.epoch={epoch}",
        f"{key}.batch={batch}",
        f"{key}.signal_name=SIGTERM",
        f"{key}.marker={marker}",
    ]


def test_a_run_resumed_mid_epoch_ends_where_the_straight_run_ends(
    digits_shards: Path, tmp_path: Path
) -> None:
    """The checkpoint holds the loader's state (Lightning's fit loop saves a stateful
    loader's state_dict), so the resumed epoch reads only the batches it had not read:
    same step count and the same weights, to the bit, as the run never interrupted."""
    base = streaming(digits_shards, "data.num_workers=2", "trainer.max_epochs=2", "test=false",
                     "trainer.deterministic=true")  # fmt: skip
    train(compose_config("train.yaml", base, tmp_path / "straight"))
    killed = [*base, *_signal_at(1, 5, tmp_path / "signalled")]
    with pytest.raises(SystemExit):
        train(compose_config("train.yaml", killed, tmp_path / "killed"))
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=True)
    (state,) = saved["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    steps_in_epoch = saved["global_step"] - 1077 // 64  # epoch 0: 16 batches (BatchNorm: drop_last)
    assert 0 < steps_in_epoch < 16 and state["num_samples_yielded"] == steps_in_epoch * 64
    train(compose_config("train.yaml", [*killed, f"ckpt_path={last}"], tmp_path / "killed"))
    expected = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", weights_only=True)
    got = torch.load(last, weights_only=True)
    assert got["global_step"] == expected["global_step"] == 2 * 16
    for key, value in expected["state_dict"].items():
        assert torch.equal(got["state_dict"][key], value), key
