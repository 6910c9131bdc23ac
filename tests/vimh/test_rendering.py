"""Rendering in several processes: the same bytes whatever the number of workers, every
worker really rendering, and a helper's error reaching the caller with nothing left
behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from src.utils.errors import UserInputError
from src.vimh import rendering
from src.vimh.format import INFO_FILE, encode_labels, read_dataset
from src.vimh.generator import generate_vimh
from src.vimh.plan import make_plan
from src.vimh.rendering import CHUNK, ChunkCounter, spectrogram_images
from src.vimh.sampling import choose
from tests.vimh.test_generate import settings

# three chunks, the train/test boundary (851 of 1064) inside the second: a chunk's records
# go to both files, and two workers must each take some and keep the order
SIZE = 2 * CHUNK + 40


def log_renders(monkeypatch: pytest.MonkeyPatch, log: Path, helper_error: str = "") -> None:
    """Log the process of every chunk rendered into ``log``; this process waits, before its
    first chunk, until a helper has taken one (so a helper renders however busy the
    machine), and helpers raise ``helper_error`` if one is given."""
    caller, real = os.getpid(), rendering.spectrogram_images

    def logged(plan, params):  # noqa: ANN001, ANN202
        with log.open("a") as file:
            file.write(f"{os.getpid()}\n")
        if os.getpid() != caller and helper_error:
            raise UserInputError(helper_error)
        deadline = time.monotonic() + 60
        while len(set(log.read_text().split())) < 2:
            assert time.monotonic() < deadline, "no helper took a chunk within 60 s"
            time.sleep(0.01)
        return real(plan, params)

    monkeypatch.setattr(rendering, "spectrogram_images", logged)


def test_workers_write_the_same_bytes(tmp_path: Path) -> None:
    made = {
        workers: generate_vimh(
            settings("seed=3", size=SIZE), tmp_path / str(workers), workers=workers
        )
        for workers in (1, 2, 3)
    }
    for name in ("train", "test", INFO_FILE):
        alone = (made[1] / name).read_bytes()
        assert alone == (made[2] / name).read_bytes() == (made[3] / name).read_bytes(), name
    # and each note's record holds that note: the notes rendered in one go, unchunked
    plan = make_plan(settings("seed=3", size=SIZE))
    values = choose(plan.varying, SIZE, seed=3)
    fixed = {name: np.full(SIZE, value) for name, value in plan.fixed.items()}
    images, levels = spectrogram_images(plan, {**values, **fixed})
    _, files = read_dataset(made[2])
    assert (len(files["train"].images), len(files["test"].images)) == (851, 213)
    written = [np.concatenate([files["train"][i], files["test"][i]]) for i in range(3)]
    assert (written[0] == images).all() and (written[2] == levels).all()
    for column, (name, spec) in enumerate(plan.varying.items()):
        expected = encode_labels(values[name], spec["min"], spec["max"])
        assert (written[1][:, column] == expected).all(), name


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_bad_workers_say_what_is_wrong(workers: object, tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match=f"workers={workers!r}: give a whole number"):
        generate_vimh(settings(), tmp_path, workers=workers)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_every_worker_renders_and_each_chunk_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "renders.log"
    log_renders(monkeypatch, log)
    generate_vimh(settings(size=SIZE), tmp_path / "data", workers=2)
    pids = log.read_text().split()
    assert len(pids) == 3 and len(set(pids)) == 2 and str(os.getpid()) in pids


def test_a_helpers_error_reaches_the_caller_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_renders(monkeypatch, tmp_path / "renders.log", helper_error="a helper failed")
    data = tmp_path / "data"
    with pytest.raises(UserInputError, match="a helper failed"):
        generate_vimh(settings(size=SIZE), data, workers=2)
    assert list(data.iterdir()) == []  # no data set, no staging directory


def test_the_counter_hands_out_each_chunk_once_until_stopped() -> None:
    counter = ChunkCounter(3)
    assert [counter.take(), counter.take()] == [0, 1]
    counter.stop()
    assert counter.take() is None and counter.take() is None
    drained = ChunkCounter(2)
    assert [drained.take() for _ in range(4)] == [0, 1, None, None]
