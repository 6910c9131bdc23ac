"""Resume points: last.ckpt every epoch and where an interrupted run stopped; a run
killed after epoch k resumes from epoch k and ends where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from src.train import train
from tests.conftest import ROOT, compose_config

QUICK = ["logger=none", "test=false", "+trainer.limit_train_batches=6", "seed=3"]


def _signal_at(
    epoch: int, batch: int | None, name: str, marker: Path, during: str = "train"
) -> list[str]:
    key = "+callbacks.signal_at"
    return [
        f"{key}._target_=tests.signal_callback.SignalAt",
        f"{key}.epoch={epoch}",
        f"{key}.batch={'null' if batch is None else batch}",
        f"{key}.signal_name={name}",
        f"{key}.marker={marker}",
        f"{key}.during={during}",
    ]


def test_last_checkpoint_is_rewritten_every_epoch(tmp_path: Path) -> None:
    """lr=0: val/acc never improves after epoch 0, yet last.ckpt follows every epoch."""
    cfg = compose_config(
        "train.yaml", [*QUICK, "trainer.max_epochs=3", "model.optimizer.lr=0.0"], tmp_path
    )
    train(cfg)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (2, 18)
    assert [p.name for p in (tmp_path / "checkpoints").glob("epoch_*")] == ["epoch_000.ckpt"]


def _key(item: tuple) -> str:
    return str(item[0])


def _same_contents(a, b, a_dir: str, b_dir: str) -> bool:
    """Two loaded checkpoints hold equal values (paths compared relative to their runs)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):  # keys too may be paths (best_k_models)
        return isinstance(b, dict) and _same_contents(
            sorted(a.items(), key=_key), sorted(b.items(), key=_key), a_dir, b_dir
        )
    if isinstance(a, list | tuple):
        pairs = zip(a, b, strict=False)  # lengths compared first
        return len(a) == len(b) and all(_same_contents(x, y, a_dir, b_dir) for x, y in pairs)
    if isinstance(a, str):
        return a.replace(a_dir, "<run>") == b.replace(b_dir, "<run>")
    return a == b


def test_last_checkpoint_links_the_best_saved_at_the_same_step(tmp_path: Path, monkeypatch):
    """An epoch that improves writes its checkpoint once: last.ckpt is a hard link to it,
    holding what a save of its own would (the same run where the filesystem has none)."""
    overrides = [*QUICK, "trainer.max_epochs=3"]
    train(compose_config("train.yaml", overrides, tmp_path / "linked"))
    checkpoints = tmp_path / "linked" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["epoch_002.ckpt", "last.ckpt"]
    assert os.path.samefile(checkpoints / "epoch_002.ckpt", checkpoints / "last.ckpt")

    def no_hard_links(source, target):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_hard_links)
    train(compose_config("train.yaml", overrides, tmp_path / "written"))
    written = tmp_path / "written" / "checkpoints"
    assert not os.path.samefile(written / "epoch_002.ckpt", written / "last.ckpt")
    assert not list(written.glob(".*"))  # no temporary link left behind
    linked_last = torch.load(checkpoints / "last.ckpt", weights_only=True)
    written_last = torch.load(written / "last.ckpt", weights_only=True)
    state = next(v for k, v in linked_last["callbacks"].items() if "RunCheckpoint" in k)
    assert state["last_model_path"] == str(checkpoints / "last.ckpt")
    dirs = str(tmp_path / "linked"), str(tmp_path / "written")
    assert _same_contents(linked_last, written_last, *dirs)


def test_sigterm_mid_epoch_saves_where_it_stopped(tmp_path: Path, capfd) -> None:
    overrides = [*QUICK, "trainer.max_epochs=3"]
    killed = _signal_at(1, 3, "SIGTERM", tmp_path / "signalled")
    cfg = compose_config("train.yaml", overrides + killed, tmp_path)
    with pytest.raises(SystemExit) as caught:
        train(cfg)
    assert caught.value.code == 143  # not 0: the run did not finish
    last = tmp_path / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=True)
    assert (saved["epoch"], saved["global_step"]) == (1, 10)  # 6 + the 4 batches of epoch 1
    status = json.loads((tmp_path / "run_status.json").read_text())
    assert status["status"] == "interrupted"
    assert (
        f"ckpt_path={last}" in status["resume"] and f"hydra.run.dir={tmp_path}" in status["resume"]
    )
    assert status["resume"] in capfd.readouterr().err  # printed as well
    cfg = compose_config("train.yaml", [*overrides, *killed, f"ckpt_path={last}"], tmp_path)
    train(cfg)
    resumed = torch.load(last, weights_only=True)
    assert (resumed["epoch"], resumed["global_step"]) == (2, 18)


def test_resume_into_its_own_directory_does_not_warn_of_its_checkpoints(
    tmp_path: Path, recwarn
) -> None:
    """Lightning warns that checkpoints/ is not empty: expected when a run resumes its own
    last.ckpt in its own directory, so silenced there; kept for another directory."""
    overrides = [*QUICK, "+trainer.limit_val_batches=2", "callbacks.rich_progress_bar=null"]
    train(compose_config("train.yaml", [*overrides, "trainer.max_epochs=1"], tmp_path))
    last = tmp_path / "checkpoints" / "last.ckpt"
    recwarn.clear()
    resume = [*overrides, "trainer.max_epochs=2", f"ckpt_path={last}"]
    train(compose_config("train.yaml", resume, tmp_path))
    assert not [w for w in recwarn if "exists and is not empty" in str(w.message)]
    other = tmp_path / "elsewhere"
    (other / "checkpoints").mkdir(parents=True)
    (other / "checkpoints" / "old.ckpt").touch()  # another run's files: the warning stays
    resume[-2] = "trainer.max_epochs=3"
    train(compose_config("train.yaml", resume, other))
    (elsewhere,) = [w for w in recwarn if "exists and is not empty" in str(w.message)]
    assert str(other / "checkpoints") in str(elsewhere.message)


def _cli(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    args = [
        "experiment=digits_cnn",
        "trainer.deterministic=true",
        "trainer.max_epochs=3",
        "test=false",
        "seed=7",
        "logger=none",
        "extras.print_config=false",
        "callbacks.rich_progress_bar=null",
        f"hydra.run.dir={run_dir}",
        *overrides,
    ]
    return subprocess.run(
        [sys.executable, str(ROOT / "src" / "train.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["SIGKILL", "SIGTERM"])
def test_killed_after_epoch_k_resumes_exactly(tmp_path: Path, name: str) -> None:
    straight = tmp_path / "straight"
    assert _cli(straight).returncode == 0
    run_dir = tmp_path / "killed"
    # after epoch 1: SIGKILL before the first batch of epoch 2, SIGTERM at the end of epoch 1
    when = (2, 0) if name == "SIGKILL" else (1, None)
    killed = _cli(run_dir, *_signal_at(*when, name, tmp_path / "signalled"))
    assert killed.returncode == (-signal.SIGKILL if name == "SIGKILL" else 143), killed.stderr
    last = run_dir / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 1
    if name == "SIGTERM":
        assert f"ckpt_path={last}" in killed.stderr  # the exact resume command
    resumed = _cli(run_dir, f"ckpt_path={last}")  # continues in its own directory
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restored all states" in resumed.stdout + resumed.stderr
    assert not list((run_dir / "checkpoints").glob("last-v*"))
    assert (run_dir / ".hydra" / "history" / "001" / "config.yaml").is_file()
    expected = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)
    got = torch.load(last, weights_only=True)
    assert got["global_step"] == expected["global_step"]
    for key, value in expected["state_dict"].items():
        assert torch.equal(got["state_dict"][key], value), key


def _fake_run(runs: Path, name: str, overrides: list[str], mtime: float) -> Path:
    """A run directory whose .hydra/hydra.yaml records the choices of ``overrides``, with a
    last.ckpt written at ``mtime``."""
    import os

    cfg = compose_config("train.yaml", overrides, runs / name)
    run = runs / name
    (run / ".hydra").mkdir(parents=True)
    choices = dict(cfg.hydra.runtime.choices)
    (run / ".hydra" / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}})
    )
    last = run / "checkpoints" / "last.ckpt"
    last.parent.mkdir()
    last.write_bytes(b"ckpt")
    os.utime(last, (mtime, mtime))
    return last


def test_ckpt_path_last_is_the_newest_of_the_same_experiment(tmp_path: Path) -> None:
    from src.utils.resume import resolve_last

    runs = tmp_path / "logs" / "train" / "runs"
    _fake_run(runs, "a", ["experiment=digits_mlp"], 1_000)
    newest = _fake_run(runs, "b", ["experiment=digits_mlp"], 2_000)
    _fake_run(runs, "c", ["experiment=digits_cnn"], 3_000)  # newer, but another experiment
    cfg = compose_config(
        "train.yaml", ["experiment=digits_mlp", "ckpt_path=last"], tmp_path / "new"
    )
    cfg.paths.log_dir = str(tmp_path / "logs")
    assert resolve_last(cfg) == str(newest)


def test_ckpt_path_last_without_a_run_is_refused(tmp_path: Path) -> None:
    from src.utils.errors import UserInputError

    cfg = compose_config("train.yaml", ["ckpt_path=last", "experiment=digits_cnn"], tmp_path)
    with pytest.raises(UserInputError, match="ckpt_path=last: no run of task 'train' under"):
        train(cfg)
    _fake_run(tmp_path / "train" / "runs", "x", ["experiment=digits_mlp"], 1_000)
    cfg = compose_config("train.yaml", ["ckpt_path=last", "experiment=digits_cnn"], tmp_path)
    with pytest.raises(
        UserInputError,
        match=r"none of the 1 runs .*its experiment=digits_mlp model=mlp; this run's experiment=digits_cnn model=cnn",
    ):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists()  # nothing trained from scratch


def test_ckpt_path_last_resumes_the_newest_run_of_the_same_model(tmp_path: Path, caplog) -> None:
    """A default-model run, then a newer model=cnn run on the same data: ckpt_path=last
    with the default model resumes the first (the cnn's last.ckpt does not fit it) and
    says that it passed over the newer one; with a third model no run fits, and the
    message names both runs and what differed."""
    from src.utils.errors import UserInputError

    logs = tmp_path / "logs"
    runs = logs / "train" / "runs"

    def run(name: str, *overrides: str) -> dict:
        cfg = compose_config("train.yaml", [*QUICK, *overrides], runs / name)
        cfg.paths.log_dir = str(logs)
        (runs / name / ".hydra").mkdir(parents=True, exist_ok=True)  # as Hydra writes it
        (runs / name / ".hydra" / "hydra.yaml").write_text(
            yaml.safe_dump({"hydra": {"runtime": {"choices": dict(cfg.hydra.runtime.choices)}}})
        )
        return train(cfg)[0]

    assert run("mlp", "trainer.max_epochs=2")["val/acc_best"] > 0.5  # it learned
    run("cnn", "trainer.max_epochs=1", "model=cnn")  # newer, another architecture
    caplog.clear()
    with caplog.at_level("INFO"):
        run("again", "trainer.max_epochs=3", "ckpt_path=last")
    assert f"resuming {runs / 'mlp' / 'checkpoints' / 'last.ckpt'}" in caplog.text
    assert "passed over 1 newer run(s)" in caplog.text
    assert f"{runs / 'cnn'} (its model=cnn; this run's model=mlp)" in caplog.text
    resumed = torch.load(runs / "again" / "checkpoints" / "last.ckpt", weights_only=True)
    assert (resumed["epoch"], resumed["global_step"]) == (2, 18)  # one epoch more than "mlp"

    with pytest.raises(UserInputError) as refused:
        run("none", "trainer.max_epochs=3", "ckpt_path=last", "model=mnist")
    said = str(refused.value)
    assert "none of the 3 runs" in said
    for name in ("mlp", "cnn"):
        assert f"{runs / name} (its model={name}; this run's model=mnist)" in said
    assert not (runs / "none" / "checkpoints").exists()


# shuffled batches and dropout: the diabetes MLP
MID_EPOCH = [
    "experiment=diabetes_mlp",
    "logger=none",
    "test=false",
    "trainer.max_epochs=2",
    "seed=5",
    "callbacks=default",  # not ridge_snr: its report is not what is compared
]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    """Two epochs in one go: (run directory, returned metrics, data directory)."""
    data = tmp_path_factory.mktemp("data")
    run_dir = tmp_path_factory.mktemp("straight")
    cfg = compose_config("train.yaml", [*MID_EPOCH, f"paths.data_dir={data}"], run_dir)
    metrics, _ = train(cfg)
    return run_dir, metrics, data


@pytest.mark.parametrize(
    ("name", "during", "saved_at"),
    [("SIGTERM", "train", 9 + 5), ("SIGINT", "train", 9 + 4), ("SIGTERM", "val", 18), ("SIGINT", "val", 18)],
)  # fmt: skip
def test_stopped_mid_epoch_resumes_bitwise_equal(
    uninterrupted: tuple[Path, dict, Path], tmp_path: Path, name: str, during: str, saved_at: int
) -> None:
    """The resumed run trains on the batches the stopped epoch had left, with the random
    numbers it would have drawn, and ends with the uninterrupted run's weights and
    metrics exactly. In training: SIGTERM stops after batch 4 of epoch 1 (5 of its 9
    batches done); Ctrl-C (SIGINT) stops at the start of batch 4, which is in flight and
    served again on resume. In validation (before epoch 1's second validation batch): the
    run resumes with the epoch trained and validates it from the start (early stopping and
    the best checkpoint need the whole validation)."""
    straight_dir, straight, data = uninterrupted
    common = [*MID_EPOCH, f"paths.data_dir={data}"]
    killed = _signal_at(1, 4 if during == "train" else 1, name, tmp_path / "signalled", during)
    with pytest.raises(SystemExit):
        train(compose_config("train.yaml", [*common, *killed], tmp_path))
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == saved_at
    cfg = compose_config("train.yaml", [*common, *killed, f"ckpt_path={last}"], tmp_path)
    resumed, _ = train(cfg)
    expected = torch.load(straight_dir / "checkpoints" / "last.ckpt", weights_only=True)
    got = torch.load(last, weights_only=True)
    assert got["global_step"] == expected["global_step"] == 18
    for key, value in expected["state_dict"].items():
        assert torch.equal(got["state_dict"][key], value), key
    # the epoch stopped part-way reports all its batches (train/), the best so far survives
    assert sorted(resumed) == sorted(straight)
    for key, value in straight.items():
        assert torch.equal(resumed[key], value), key


def test_resuming_a_finished_run_says_nothing_is_left_to_train(tmp_path: Path) -> None:
    """A run that reached max_epochs, resumed with the same max_epochs, stops before
    training with the limit to raise (Lightning alone would train nothing and the run
    would end on a validation metric it never logged); one more epoch resumes and trains."""
    from src.utils.errors import UserInputError

    first = tmp_path / "first"
    metrics, _ = train(compose_config("train.yaml", [*QUICK, "trainer.max_epochs=2"], first))
    assert metrics["val/acc_best"] > 0.5  # it learned: ten classes, chance is 0.1
    last = first / "checkpoints" / "last.ckpt"
    again = tmp_path / "again"
    cfg = compose_config("train.yaml", [*QUICK, "trainer.max_epochs=2", f"ckpt_path={last}"], again)
    with pytest.raises(UserInputError, match=r"already trained 2 epochs and trainer.max_epochs=2"):
        train(cfg)
    assert not (again / "checkpoints").exists()  # stopped before any training
    more = tmp_path / "more"
    cfg = compose_config("train.yaml", [*QUICK, "trainer.max_epochs=3", f"ckpt_path={last}"], more)
    train(cfg)
    resumed = torch.load(more / "checkpoints" / "last.ckpt", weights_only=True)
    assert (resumed["epoch"], resumed["global_step"]) == (2, 18)  # one epoch of 6 batches more


def test_ctrl_c_is_recorded_as_keyboard_interrupt_with_exit_status_130(tmp_path: Path) -> None:
    """Lightning ends a Ctrl-C with sys.exit(1) inside its ``except KeyboardInterrupt``: the
    run's status names the KeyboardInterrupt (not "SystemExit") and the exit status is the
    shell's 130 for SIGINT, as a SIGTERM's is 143."""
    from omegaconf import OmegaConf

    from src.utils.run_status import task_wrapper

    def lightning_stopped_by_ctrl_c(cfg) -> tuple[dict, dict]:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            sys.exit(1)

    cfg = OmegaConf.create({"paths": {"output_dir": str(tmp_path)}})
    with pytest.raises(SystemExit) as caught:
        task_wrapper(lightning_stopped_by_ctrl_c)(cfg)
    assert caught.value.code == 130
    status = json.loads((tmp_path / "run_status.json").read_text())
    assert status == {"status": "interrupted", "error": "KeyboardInterrupt"}


def test_a_resume_that_fails_before_a_checkpoint_leaves_the_run_as_it_was(
    tmp_path: Path,
) -> None:
    """Resumed in its own directory with a model its checkpoint does not fit, the run
    stops before training; Hydra had already saved the new config and the run its status,
    which would then describe a training that never happened (eval rebuilds that model):
    both are put back, and the history keeps no entry for the failed attempt."""
    run_dir = tmp_path / "run"
    quick = [
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=4",
        "+trainer.limit_val_batches=2",
    ]
    assert _cli(run_dir, *quick).returncode == 0
    kept = [".hydra/config.yaml", ".hydra/overrides.yaml", "run_status.json", "run_metadata.json"]
    before = {name: (run_dir / name).read_bytes() for name in kept}
    last = run_dir / "checkpoints" / "last.ckpt"
    resumed = _cli(
        run_dir, *quick, "trainer.max_epochs=2", "model.net.hidden_size=64", f"ckpt_path={last}"
    )
    assert resumed.returncode == 1
    assert "another architecture" in resumed.stderr, resumed.stderr[-2000:]
    assert "left as it was" in resumed.stderr
    assert {name: (run_dir / name).read_bytes() for name in kept} == before
    assert not (run_dir / ".hydra" / "history").exists()
    # a resume that trains keeps its config, and the one before it in the history
    more = _cli(run_dir, *quick, "trainer.max_epochs=2", f"ckpt_path={last}")
    assert more.returncode == 0, more.stderr[-2000:]
    assert (run_dir / ".hydra" / "history" / "001" / "config.yaml").read_bytes() == before[
        ".hydra/config.yaml"
    ]
    assert json.loads((run_dir / "run_status.json").read_text())["status"] == "finished"


class ZeroWeights(Callback):
    """Zero the net's weights when training starts (after the resume restored them): the
    resumed run's own epochs then learn next to nothing."""

    def on_train_start(self, trainer, pl_module) -> None:
        with torch.no_grad():
            for parameter in pl_module.net.parameters():
                parameter.zero_()


def test_a_resume_into_a_new_directory_keeps_the_best_epoch_of_the_whole_training(
    tmp_path: Path,
) -> None:
    """The README's resume (a new, timestamped directory) compares its epochs with the
    earlier run's best: it tested its own best epoch, far worse than the earlier best
    that its val/acc_best reported."""
    first = compose_config("train.yaml", ["trainer.max_epochs=2", "test=false"], tmp_path / "a")
    _, objects = train(first)
    earlier_best = Path(objects["trainer"].checkpoint_callback.best_model_path)
    before = earlier_best.read_bytes()
    resumed = compose_config(
        "train.yaml",
        [
            "trainer.max_epochs=3",
            f"ckpt_path={tmp_path / 'a' / 'checkpoints' / 'last.ckpt'}",
            "+callbacks.zero._target_=tests.test_resume.ZeroWeights",
        ],
        tmp_path / "b",
    )
    metrics, objects = train(resumed)
    checkpoints = objects["trainer"].checkpoint_callback
    assert float(metrics["val/acc"]) < 0.5  # the zeroed epoch learned next to nothing
    assert Path(checkpoints.best_model_path) == tmp_path / "b" / "checkpoints" / earlier_best.name
    assert float(checkpoints.best_model_score) == pytest.approx(float(metrics["val/acc_best"]))
    assert float(metrics["test/acc"]) > 0.9  # the earlier best epoch was tested
    assert earlier_best.read_bytes() == before  # the earlier run keeps its checkpoint
