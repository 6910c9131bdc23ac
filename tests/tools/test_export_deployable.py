"""Deployable ONNX: raw inputs through the exported graph give the model's answers (a
regression run's in target units), the opset asked is the one written (or the report says
why not), the weights sit inside model.onnx, timings pin threads, runs export by glob."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import torch

from src.data.diabetes_datamodule import diabetes_csv
from src.tools.export import export_all
from src.train import train
from src.utils.errors import UserInputError
from src.utils.training_run import TrainingRun
from tests.conftest import compose_config, save_run_config

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def trained(run_dir: Path, overrides: list[str]) -> Path:
    cfg = compose_config("train.yaml", [*overrides, "logger=none"], run_dir)
    train(cfg)
    save_run_config(cfg, run_dir)
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two runs under one folder: diabetes_mlp (regression) and digits mlp."""
    root = tmp_path_factory.mktemp("runs")
    data = f"paths.data_dir={root / 'data'}"
    trained(root / "runs" / "diabetes", ["experiment=diabetes_mlp", "trainer.max_epochs=3", data])
    trained(root / "runs" / "digits", ["model=mlp", "trainer.max_epochs=1", data])
    return root


def exported(out: Path, *overrides: str) -> list[dict]:
    cfg = compose_config("export.yaml", ["bench_repeats=2", *overrides], out)
    return export_all(cfg)


def test_raw_rows_through_onnx_give_the_models_answers_in_target_units(runs, tmp_path) -> None:
    run_dir = runs / "runs" / "diabetes"
    (report,) = exported(tmp_path, f"run_dir={run_dir}", "opset=18")
    rows = pd.read_csv(io.StringIO(diabetes_csv()))
    raw = rows[FEATURES].to_numpy(np.float32)
    import onnxruntime

    session = onnxruntime.InferenceSession(tmp_path / "model.onnx")
    (answers,) = session.run(None, {session.get_inputs()[0].name: raw})
    run = TrainingRun.read(run_dir)
    datamodule = run.datamodule()
    run.load_datamodule_state(datamodule)
    model = run.model(datamodule).eval()
    with torch.no_grad():
        expected = model(datamodule.scale_inputs(torch.from_numpy(raw))).numpy()
    np.testing.assert_allclose(answers, expected, rtol=1e-4, atol=1e-3)
    assert 60 < float(answers.mean()) < 250  # target units (progression 25..346), not ~0
    assert report["max_abs_diff"] < 1e-3 and report["outputs_in"] == "target units"
    assert report["weights"] == "inside model.onnx"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("model.onnx")] == [
        "model.onnx"
    ]  # no external data file
    assert report["threads"] == 1
    saved = json.loads((tmp_path / "export_report.json").read_text())
    assert saved["opset"] == 18 and saved["opset_note"] is None


def test_the_opset_asked_is_the_opset_written_or_the_report_says_why(runs, tmp_path) -> None:
    (report,) = exported(tmp_path, f"run_dir={runs / 'runs' / 'digits'}", "opset=14")
    written = next(
        o.version for o in onnx.load(tmp_path / "model.onnx").opset_import if o.domain == ""
    )
    assert report["opset_requested"] == 14 and report["opset"] == written
    if written != 14:
        assert "asked for opset 14" in report["opset_note"]
    else:
        assert report["opset_note"] is None
    assert report["argmax_agreement"] == 1.0 and report["max_abs_diff"] < 1e-4
    assert "raw inputs" in report["inputs"]


def test_several_runs_by_glob(runs, tmp_path) -> None:
    reports = exported(tmp_path, f"run_dir={runs / 'runs'}/*")
    assert [Path(r["run_dir"]).name for r in reports] == ["diabetes", "digits"]
    for name in ("diabetes", "digits"):
        assert (tmp_path / name / "model.onnx").is_file()
        assert (tmp_path / name / "export_report.json").is_file()
    assert len(json.loads((tmp_path / "export_reports.json").read_text())) == 2
    with pytest.raises(UserInputError, match="matches no run directory"):
        exported(tmp_path / "none", f"run_dir={runs / 'nothing'}/*")
