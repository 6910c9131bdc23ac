"""ONNX export: a checked graph with a free batch size that matches PyTorch on real batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from src.export import export, export_onnx
from src.train import train
from src.utils.errors import UserInputError
from tests.conftest import compose_config


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_export_matches_pytorch(model: str, tmp_path: Path) -> None:
    cfg = compose_config("train.yaml", [f"model={model}", "trainer.max_epochs=2"], tmp_path / "run")
    _, objects = train(cfg)
    best = objects["trainer"].checkpoint_callback.best_model_path
    export_cfg = compose_config(
        "export.yaml",
        [f"ckpt_path={best}", f"model={model}", "bench_repeats=3"],
        tmp_path / "export",
    )
    _, result = export(export_cfg)
    report = json.loads((tmp_path / "export" / "export_report.json").read_text())
    assert report == json.loads(json.dumps(result["report"]))
    assert (tmp_path / "export" / "model.onnx").stat().st_size > 1000
    assert report["max_abs_diff"] < 1e-4 and report["argmax_agreement"] == 1.0
    assert report["test_samples"] == 360
    assert set(report["timings"]) == {"1", "256"}  # the free batch dimension, both ways
    assert all(t["onnxruntime_ms"] > 0 and t["torch_ms"] > 0 for t in report["timings"].values())


class DataDependent(torch.nn.Module):
    """Control flow on a tensor's value: torch.export cannot trace it into one graph."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x * 2
        return x


def test_a_net_that_cannot_export_says_why(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="DataDependent cannot be exported to ONNX"):
        export_onnx(DataDependent(), (torch.randn(2, 3),), tmp_path / "x.onnx", opset=18)
    assert not (tmp_path / "x.onnx").exists()
