"""ONNX export: a checked graph with a free batch size that matches PyTorch on real batches."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from src.tools.export import export, export_onnx
from src.train import train
from src.utils.errors import UserInputError
from tests.conftest import compose_config, save_run_config, vimh_overrides


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
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, result = export(export_cfg)
    # the net is exported in eval mode, so torch has no "training mode" warning to give
    assert not [w for w in caught if "training mode" in str(w.message)]
    report = json.loads((tmp_path / "export" / "export_report.json").read_text())
    assert report == json.loads(json.dumps(result["report"]))
    assert (tmp_path / "export" / "model.onnx").stat().st_size > 1000
    assert report["max_abs_diff"] < 1e-4 and report["argmax_agreement"] == 1.0
    assert report["test_samples"] == 360
    assert set(report["timings"]) == {"1", "256"}  # the free batch dimension, both ways
    assert all(t["onnxruntime_ms"] > 0 and t["torch_ms"] > 0 for t in report["timings"].values())


# every other net family, each on the data it is made for (the multihead nets return
# one output per head: the ONNX graph must list them all, in order)
OTHER_NETS = {
    "vimh_cnn": ["experiment=vimh_cnn"],
    "vimh_vit": ["experiment=vimh_vit"],
    "vimh_convnext": ["experiment=vimh_convnext"],
    "cnn1d": ["experiment=signals_cnn1d", "data.num_samples=600"],
    "regression_mlp": ["experiment=diabetes_mlp"],
}


@pytest.mark.parametrize(
    "net", [pytest.param(n, marks=[] if n == "vimh_cnn" else pytest.mark.slow) for n in OTHER_NETS]
)
def test_every_net_family_exports(net: str, tmp_path: Path) -> None:
    overrides = [*OTHER_NETS[net], "trainer.max_epochs=1", "+trainer.limit_train_batches=3"]
    if net.startswith("vimh"):
        overrides += vimh_overrides(tmp_path / "data", 400)
    else:
        overrides.append(f"paths.data_dir={tmp_path / 'data'}")
    cfg = compose_config("train.yaml", overrides, tmp_path / "run")
    train(cfg)
    save_run_config(cfg, tmp_path / "run")  # export reads it back through run_dir=
    export_cfg = compose_config(
        "export.yaml", [f"run_dir={tmp_path / 'run'}", "bench_repeats=2"], tmp_path / "export"
    )
    _, result = export(export_cfg)
    report = result["report"]
    # simple_saw's two varying parameters are two heads: two outputs
    assert len(report["outputs"]) == (2 if net.startswith("vimh") else 1)
    assert report["max_abs_diff"] < 1e-3
    if report["argmax_agreement"] is not None:
        assert report["argmax_agreement"] > 0.99


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


def test_export_prints_no_exporter_progress_or_graph_pass_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Under Hydra's INFO root logger the exporter printed eight "[torch.onnx] ..." lines and
    its graph passes a dozen INFO lines ("Removed 29 unused nodes", "Skipping constant
    folding for node 'node_sub' ..."): none a user can act on."""
    from src.utils.extras import quiet_console  # what every run does first (extras)

    quiet_console()
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU()).eval()
    with caplog.at_level("INFO"):
        export_onnx(net, (torch.randn(2, 3),), tmp_path / "x.onnx", opset=18)
    assert (tmp_path / "x.onnx").stat().st_size > 0
    assert "[torch.onnx]" not in capsys.readouterr().out
    chatter = [r for r in caplog.records if r.name.split(".")[0] in ("onnx_ir", "onnxscript")]
    assert not [r for r in chatter if r.levelno < 30], [r.getMessage() for r in chatter]
