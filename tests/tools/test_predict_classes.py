"""predict.py on classification and multihead runs: predictions of the test split,
recomputed from the CSV, give the run's logged test metrics; bad input is one message."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from src.data.components.folder_splits import AUDIO_EXTENSIONS, make_splits
from src.data.digits_datamodule import CACHE, read_digits
from src.tools.example_folders import AUDIO_CLASSES, write_digit_images, write_synth_notes
from src.tools.predict import predict
from src.train import train
from src.utils.errors import UserInputError
from tests.conftest import compose_config, save_run_config, vimh_overrides


def trained_run(run_dir: Path, overrides: list[str]) -> dict[str, float]:
    """Train in this process, save the config as Hydra would; the test metrics."""
    cfg = compose_config("train.yaml", [*overrides, "logger=none"], run_dir)
    metrics, _ = train(cfg)
    save_run_config(cfg, run_dir)
    return {k: float(v) for k, v in metrics.items()}


def predicted(tmp_path: Path, *overrides: str) -> pd.DataFrame:
    cfg = compose_config("predict.yaml", list(overrides), tmp_path)
    _, objects = predict(cfg)
    return objects["predictions"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float], Path]:
    work = tmp_path_factory.mktemp("digits")
    overrides = ["model=mlp", "trainer.max_epochs=2", f"paths.data_dir={work / 'data'}"]
    return work / "run", trained_run(work / "run", overrides), work / "data"


def test_digits_arrays_reproduce_the_logged_test_accuracy(
    digits_run, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run_dir, logged, data_dir = digits_run
    images, target = read_digits(data_dir / CACHE)
    test = json.loads((run_dir / "splits.json").read_text())["test"]
    np.save(tmp_path / "test.npy", images[test])  # raw values 0..16, as scikit-learn has them
    table = predicted(tmp_path / "p", f"run_dir={run_dir}", f"input={tmp_path / 'test.npy'}")
    assert (tmp_path / "test_predictions.csv").is_file()
    # numbered classes with their counts apart ("0: 2, 1: 1" read as a list of pairs)
    said = capsys.readouterr().out
    assert re.search(r"Predicted 360 samples; predicted class \(samples\): 0 \(\d+\), 1 \(", said)
    written = pd.read_csv(tmp_path / "test_predictions.csv")
    # ranked columns that cannot be read as a class's name (class_1 could)
    assert list(written.columns) == ["input"] + [
        f"top{r}_{c}" for r in (1, 2, 3) for c in ("class", "probability")
    ]
    accuracy = float((written["top1_class"].astype(int) == target[test]).mean())
    assert accuracy == pytest.approx(logged["test/acc"], abs=1e-6)
    assert accuracy > 0.5  # it learned: chance is 0.1
    probabilities = written[["top1_probability", "top2_probability", "top3_probability"]].to_numpy()
    assert (np.diff(probabilities, axis=1) <= 0).all() and (probabilities[:, 0] > 0.1).all()
    assert len(table) == len(test) == 360
    # CSV rows of flattened pixels (with a header row) give the same classes; top_k=1
    frame = pd.DataFrame(images[test[:20]].reshape(20, 64), columns=[f"p{i}" for i in range(64)])
    frame.to_csv(tmp_path / "rows.csv", index=False)
    rows = predicted(
        tmp_path / "q", f"run_dir={run_dir}", f"input={tmp_path / 'rows.csv'}", "top_k=1"
    )
    assert list(rows.columns) == ["input", "top1_class", "top1_probability"]
    assert rows["top1_class"].tolist() == written["top1_class"].astype(str).head(20).tolist()


def test_bad_inputs_are_one_message(digits_run, tmp_path: Path) -> None:
    run_dir, _, _ = digits_run
    np.save(tmp_path / "wrong.npy", np.zeros((4, 63)))
    with pytest.raises(
        UserInputError, match=r"shape \(4, 63\), but the model takes samples of shape \(1, 8, 8\)"
    ):
        predicted(tmp_path / "a", f"run_dir={run_dir}", f"input={tmp_path / 'wrong.npy'}")
    with pytest.raises(UserInputError, match="none.npy does not exist"):
        predicted(tmp_path / "b", f"run_dir={run_dir}", f"input={tmp_path / 'none.npy'}")
    (tmp_path / "a.png").write_bytes(b"png")
    with pytest.raises(UserInputError, match="this run takes arrays"):
        predicted(tmp_path / "c", f"run_dir={run_dir}", f"input={tmp_path / 'a.png'}")
    assert not list(tmp_path.glob("*_predictions.csv"))  # nothing written


def test_no_input_or_the_current_folder_is_one_message(
    digits_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``make predict RUN=<run>`` without INPUT= passes ``input=``, and ``input=.`` names the
    current folder: both ended in "ValueError: PosixPath('.') has an empty name"."""
    run_dir, _, _ = digits_run
    with pytest.raises(UserInputError, match=r"Give what to predict.*INPUT="):
        predicted(tmp_path / "a", f"run_dir={run_dir}", "input=")
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    with pytest.raises(UserInputError, match="this run takes arrays"):
        predicted(tmp_path / "b", f"run_dir={run_dir}", "input=.")
    assert not list(tmp_path.rglob("*_predictions.csv"))


def test_image_folder_files_reproduce_the_logged_test_accuracy(tmp_path: Path) -> None:
    root = tmp_path / "pngs"
    write_digit_images(root, size=16, channels=3, per_class=30)
    for other in range(3, 10):
        shutil.rmtree(root / "raw" / str(other))
    make_splits(root)
    overrides = [
        "data=image_folder",
        f"data.root={root}",
        "data.image_size=16",
        "data.num_workers=0",
        "data.batch_size=16",
        "model=cnn",
        "trainer.max_epochs=4",
        "callbacks.rich_progress_bar=null",
    ]
    logged = trained_run(tmp_path / "run", overrides)
    files = [root / "raw" / f for f in (root / "splits" / "test.txt").read_text().split()]
    listed = "[" + ",".join(str(f) for f in files) + "]"
    table = predicted(tmp_path / "p", f"run_dir={tmp_path / 'run'}", f"input={listed}", "top_k=2")
    truth = [Path(f).parent.name for f in table["input"]]
    accuracy = float((table["top1_class"] == truth).mean())
    assert accuracy == pytest.approx(logged["test/acc"], abs=1e-6) and accuracy >= 0.7
    assert set(table["top1_class"]) <= {"0", "1", "2"}
    assert (tmp_path / "p" / "predictions.csv").is_file()  # a list: in the tool's run dir
    folder = predicted(tmp_path / "q", f"run_dir={tmp_path / 'run'}", f"input={root / 'raw' / '1'}")
    assert len(folder) == 30 and (root / "raw" / "1_predictions.csv").is_file()
    (root / "raw" / "bad.png").write_bytes(b"not an image")
    with pytest.raises(UserInputError, match="bad.png is not an image PIL can read"):
        predicted(
            tmp_path / "r", f"run_dir={tmp_path / 'run'}", f"input=[{root / 'raw' / 'bad.png'}]"
        )


def test_audio_folder_files_reproduce_the_logged_test_accuracy(tmp_path: Path) -> None:
    """An audio-folder run read WAV files as VIMH record files ("record 0's header says
    18770x17990x4036 pixels ... Generate the data set again"): it takes them as they are."""
    root = tmp_path / "notes"
    write_synth_notes(root, per_class=20)
    make_splits(root, extensions=AUDIO_EXTENSIONS)
    overrides = [
        "experiment=audio_folder_cnn",
        f"data.root={root}",
        "data.num_workers=0",
        "trainer.max_epochs=3",
        "callbacks.rich_progress_bar=null",
    ]
    logged = trained_run(tmp_path / "run", overrides)
    files = [root / "raw" / f for f in (root / "splits" / "test.txt").read_text().split()]
    listed = "[" + ",".join(str(f) for f in files) + "]"
    table = predicted(tmp_path / "p", f"run_dir={tmp_path / 'run'}", f"input={listed}")
    truth = [Path(f).parent.name for f in table["input"]]
    accuracy = float((table["top1_class"] == truth).mean())
    assert accuracy == pytest.approx(logged["test/label/acc"], abs=1e-6)
    assert set(table["top1_class"]) <= set(AUDIO_CLASSES)
    assert list(table.columns) == ["input"] + [
        f"top{r}_{c}" for r in (1, 2, 3) for c in ("class", "probability")
    ]
    with pytest.raises(UserInputError, match="holds no audio files"):
        predicted(tmp_path / "q", f"run_dir={tmp_path / 'run'}", f"input={tmp_path / 'p'}")


def test_vimh_heads_in_parameter_units_reproduce_the_logged_accuracy(tmp_path: Path) -> None:
    overrides = [
        "experiment=vimh_cnn",
        "trainer.max_epochs=2",
        "callbacks.rich_progress_bar=null",
        *vimh_overrides(tmp_path / "data", 400),
    ]
    logged = trained_run(tmp_path / "run", overrides)
    data_dir = next((tmp_path / "data").glob("vimh-*"))
    table = predicted(tmp_path / "p", f"run_dir={tmp_path / 'run'}", f"input={data_dir / 'test'}")
    # vimh_cnn: note_number a classification head, note_velocity a regression head
    assert list(table.columns) == [
        "input",
        "note_number",
        "predicted_note_number",
        "probability_note_number",
        "note_velocity",
        "predicted_note_velocity",
    ]
    accuracy = float((table["note_number"] == table["predicted_note_number"]).mean())
    assert accuracy == pytest.approx(logged["test/note_number/acc"], abs=1e-6)
    error = float((table["note_velocity"] - table["predicted_note_velocity"]).abs().mean())
    assert error == pytest.approx(logged["test/note_velocity/mae"], rel=1e-4)
    # parameter units: MIDI notes 40..88 and velocities 40..127 on their grid of 1
    assert table["predicted_note_number"].between(40, 88).all()
    assert table["note_velocity"].between(40, 127).all()
    assert (table["predicted_note_number"] % 1 == 0).all()
    with pytest.raises(UserInputError, match="holds arrays|VIMH record file|not a VIMH"):
        predicted(tmp_path / "q", f"run_dir={tmp_path / 'run'}", f"input={data_dir}")
