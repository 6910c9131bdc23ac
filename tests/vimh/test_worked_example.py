"""notebooks/vimh_worked_example.ipynb runs end to end: generates notes, trains three
architectures that learn, compares them and draws confusion matrices in parameter values."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from src.utils import runs
from tests.conftest import ROOT
from tests.test_notebooks import execute, text_of

ARCHITECTURES = ["vimh_mlp", "vimh_cnn_16k", "vimh_vit_38k"]


def screenshot(book, path: Path, height: int = 6400) -> None:
    """The executed notebook as HTML, photographed whole by headless chromium (make
    chromium). tests/test_notebooks.screenshot's page is 3200 px: this one is longer."""
    from nbconvert import HTMLExporter

    html, _ = HTMLExporter().from_notebook_node(book)
    page = path.with_suffix(".html")
    page.write_text(html)
    done = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--screenshot={path}", f"--window-size=1100,{height}", "--virtual-time-budget=5000",
         page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and path.stat().st_size > 10_000, done.stderr[-2000:]
    keep = os.environ.get("NOTEBOOK_SCREENSHOTS")  # a folder to keep them in, to look at
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for made in (path, page):
            shutil.copy(made, Path(keep) / made.name)


@pytest.mark.slow
def test_worked_example_trains_compares_and_draws(tmp_path: Path, monkeypatch) -> None:
    env = {"WORK_DIR": str(tmp_path), "SIZE": "600", "EPOCHS": "6"}
    generated = ROOT / "logs" / "generate_vimh" / "runs"
    before = set(generated.iterdir()) if generated.is_dir() else set()
    book = execute("vimh_worked_example.ipynb", env, monkeypatch)
    # everything under WORK_DIR: the generator's run too, not a run in the project's logs/
    assert (tmp_path / "generate" / ".hydra").is_dir()
    assert (set(generated.iterdir()) if generated.is_dir() else set()) == before
    text = text_of(book)
    table = pd.read_csv(tmp_path / "comparison.csv", index_col="architecture")
    assert list(table.index) == [*ARCHITECTURES, "baseline"]
    baseline = table.loc["baseline"]
    for arch in ARCHITECTURES:
        (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.name.endswith(f"_{arch}")]
        summary = runs.run_summary(run_dir)
        row = table.loc[arch]
        assert row["test note_number acc"] == pytest.approx(summary["test/note_number/acc"])
        model, _ = runs.load_run(run_dir)
        assert row["parameters"] == sum(p.numel() for p in model.net.parameters())
        # every architecture learnt both heads (measured: pitch 0.20 to 0.59, velocity
        # MAE 8 to 13 against 0.017 and 21 for the baselines)
        assert row["test note_number acc"] > baseline["test note_number acc"] + 0.1, arch
        assert row["test note_velocity MAE"] < 0.8 * baseline["test note_velocity MAE"], arch
    assert table.loc[ARCHITECTURES, "test note_number acc"].max() > 0.3
    # the matrices' axes are parameter values: simple_saw's notes 40..88, velocities 40..127
    axes = dict(re.findall(r"(note_\w+ \(\w+\)): axis from (\S+ to \S+), ", text))
    for arch in ARCHITECTURES:
        assert axes[f"note_number ({arch})"] == "40 to 88"
        assert axes[f"note_velocity ({arch})"] == "40-51 to 116-127"
    figures = [
        o for c in book.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})
    ]
    assert len(figures) == 2  # one figure per head, the three architectures side by side
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "confusion_note_number.png",
        "confusion_note_velocity.png",
    ]
    screenshot(book, tmp_path / "vimh_worked_example.png")
