"""The learning-rate and batch-size finders write their findings and say what to use."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from src.tools.find_lr_batch_size import search
from tests.conftest import compose_config


def test_lr_finder_writes_plot_json_and_override(tmp_path: Path, capsys) -> None:
    cfg = compose_config("lr_find.yaml", ["lr_find.num_training=60"], tmp_path)
    metrics, _ = search(cfg)
    report = json.loads((tmp_path / "lr_find.json").read_text())
    assert len(report["loss"]) == 60 and report["suggestion"] == metrics["found"]
    assert 1e-6 <= report["suggestion"] <= 1.0
    with Image.open(tmp_path / "lr_find.png") as plot:
        assert plot.size[0] > 300
    assert f"model.optimizer.lr={report['suggestion']:.3g}" in capsys.readouterr().out


def test_lr_finder_explains_a_missing_suggestion(tmp_path: Path, capsys) -> None:
    cfg = compose_config("lr_find.yaml", ["lr_find.num_training=5"], tmp_path)
    metrics, _ = search(cfg)
    report = json.loads((tmp_path / "lr_find.json").read_text())
    assert report["suggestion"] is None and "found" not in metrics
    assert (
        "too few" in report["why_none"] and "No learning rate suggested" in capsys.readouterr().out
    )


def test_batch_size_finder_stops_at_the_training_set(tmp_path: Path, capsys) -> None:
    cfg = compose_config("lr_find.yaml", ["find=batch_size"], tmp_path)
    metrics, objects = search(cfg)
    found = json.loads((tmp_path / "batch_size_find.json").read_text())["batch_size"]
    assert found == metrics["found"] == 1077  # digits' training split: nothing larger helps
    assert "data.batch_size=1077" in capsys.readouterr().out
