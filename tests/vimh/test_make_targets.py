"""NSMT's make shortcuts: each quick run trains its architecture through make, as typed."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, compose_config, vimh_overrides

# the nets NSMT's quick targets stand for (make help says the same)
QUICK = {
    "tq": "src.vimh.spectral_mlp.SpectralMLP",
    "tqc": "src.vimh.spectral_cnn.SpectralCNN",
    "tqv": "src.vimh.spectral_vit.SpectralViT",
    "tqcn": "src.vimh.spectral_convnext.SpectralConvNeXt",
}


def make(*args: str, timeout: int = 600, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
    )


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(QUICK))
def test_quick_targets_train_their_net(target: str, tmp_path: Path) -> None:
    tiny = [
        *vimh_overrides(tmp_path / "data", 96),
        f"paths.log_dir={tmp_path / 'logs'}",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "extras.print_config=false",
    ]
    done = make(target, f"ARGS={' '.join(tiny)}")
    assert done.returncode == 0, done.stderr[-3000:]
    (config,) = (tmp_path / "logs").glob("train/runs/*/.hydra/config.yaml")
    text = config.read_text()
    assert f"_target_: {QUICK[target]}" in text
    (status,) = (tmp_path / "logs").glob("train/runs/*/run_status.json")
    assert json.loads(status.read_text())["status"] == "finished"


@pytest.mark.parametrize("target", sorted(QUICK))
def test_quick_targets_tag_their_net(target: str, tmp_path: Path) -> None:
    """The tags (MLflow, TensorBoard, the run's metadata) name the net that trains:
    make tq trains the dense net, not the CNN of experiment=vimh_cnn's tags."""
    dry = make("-n", target)
    assert dry.returncode == 0, dry.stderr
    (line,) = [x for x in dry.stdout.splitlines() if "src/train.py" in x]
    overrides = shlex.split(line.split("src/train.py", 1)[1])
    cfg = compose_config("train.yaml", overrides, tmp_path)
    net = {"tq": "mlp", "tqc": "cnn", "tqv": "vit", "tqcn": "convnext"}[target]
    others = {"mlp", "cnn", "vit", "convnext"} - {net}
    assert net in cfg.tags and not others & set(cfg.tags), list(cfg.tags)


def test_nsmt_shortcuts_exist() -> None:
    for target in [
        "t",
        "tmps",
        "trainmps",
        "trc",
        "trvs",
        "trcns",
        "evimh16k",
        "evimhstk",
        "dclean",
        "tb",
        "activate",
        "deactivate",
        *QUICK,
    ]:
        dry = make("-n", target)
        assert dry.returncode == 0, (target, dry.stderr)
    assert "source .venv/bin/activate" in make("activate").stdout


def test_dclean_lists_and_keeps_everything_without_a_yes(tmp_path: Path) -> None:
    made = ROOT / "data" / "vimh-test-dclean-probe"
    made.mkdir(parents=True)
    try:
        done = make("dclean", stdin="n\n")
        assert done.returncode == 0, done.stderr
        assert str(made.relative_to(ROOT)) in done.stdout and "Nothing deleted." in done.stdout
        assert made.is_dir()
    finally:
        made.rmdir()
