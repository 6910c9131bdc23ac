"""make td/tds/tda/tdss: text and graphical architecture diagrams, and the comparison."""

from __future__ import annotations

import csv
import html
import logging
import re
import struct
from pathlib import Path

import pytest
import torch

from src.tools import diagrams
from src.utils.errors import UserInputError
from tests.conftest import compose_config, vimh_overrides


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vimh")


def diagram_cfg(data_dir: Path, out: Path, *overrides: str):
    return compose_config(
        "diagrams.yaml",
        ["experiment=vimh_cnn", *vimh_overrides(data_dir, 64), f"out_dir={out}", *overrides],
        out,
    )


def test_graph_of_the_cnn_has_its_layers_and_shapes(data_dir: Path, tmp_path: Path) -> None:
    cfg = diagram_cfg(data_dir, tmp_path, "diagram=graph", "model=vimh_cnn_16k")
    written = diagrams.draw(cfg)
    assert sorted(p.name for p in written) == ["vimh_cnn_16k.png", "vimh_cnn_16k.svg"]
    png = (tmp_path / "vimh_cnn_16k.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width > 300 and height > 1000  # a tall chain of labelled boxes
    svg = (tmp_path / "vimh_cnn_16k.svg").read_text()
    nodes = re.findall(r'<g id="node\d+" class="node">(.*?)</g>', svg, flags=re.S)
    labels = [" ".join(re.findall(r">([^<>]+)</text>", html.unescape(n))) for n in nodes]
    kinds = [label.split()[0] for label in labels]
    # 3 conv blocks of 4 layers, the heads' pooling (mean, flatten, cat), the hidden layer
    # (Linear, ReLU, Dropout), one Linear per head, 2 inputs (image, levels), 2 outputs
    assert len(nodes) == 12 + 3 + 3 + 2 + 2 + 2
    for kind, count in [("Conv2d", 3), ("BatchNorm2d", 3), ("MaxPool2d", 3), ("Linear", 3)]:
        assert kinds.count(kind) == count, (kind, kinds)
    assert kinds.count("input-tensor") == 2 and kinds.count("output-tensor") == 2
    assert any("(2, 1, 32, 32)" in label for label in labels)  # the sample's shape
    assert any("(2, 49)" in label for label in labels)  # note_number's 49 classes
    assert "vimh_cnn_16k (SpectralCNN)" in svg


def test_text_diagram_lists_layers_shapes_and_parameters(data_dir: Path, tmp_path: Path) -> None:
    cfg = diagram_cfg(data_dir, tmp_path, "model=vimh_cnn_16k")
    (path,) = diagrams.draw(cfg)
    text = path.read_text()
    assert path.name == "vimh_cnn_16k.txt"
    assert text.startswith("vimh_cnn_16k: SpectralCNN\ninput  [2, 1, 32, 32], [2, 2]\n")
    assert "output note_number [2, 49], note_velocity [2, 1]" in text
    for layer in ("net.features.0", "net.heads.hidden.0", "net.heads.outputs.note_number"):
        assert layer in text
    assert re.search(r"11\.8 K\s+Total params", text)


def test_comparison_counts_parameters_and_flops_on_one_sample(
    data_dir: Path, tmp_path: Path
) -> None:
    archs = "architectures=[vimh_mlp,vimh_cnn_16k,vimh_vit_38k]"
    cfg = diagram_cfg(data_dir, tmp_path, "diagram=compare", archs)
    diagrams.draw(cfg)
    rows = {r["architecture"]: r for r in csv.DictReader((tmp_path / "compare.csv").open())}
    assert list(rows) == ["vimh_mlp", "vimh_cnn_16k", "vimh_vit_38k"]
    models = diagrams.architectures(cfg)
    for arch, model in models.items():
        assert int(rows[arch]["parameters"]) == sum(p.numel() for p in model.parameters())
        assert rows[arch]["input"] == "[2, 1, 32, 32], [2, 2]"  # the same sample for all
    # the CNN's FLOPs by hand: 2 x multiply-adds of its 3x3 convs and its 3 Linear layers
    convs = 32 * 32 * 8 * 1 + 16 * 16 * 16 * 8 + 8 * 8 * 32 * 16
    linears = (32 * 4 + 2) * 32 + 32 * 49 + 32 * 1
    expected = 2 * (9 * convs + linears) / 1e6
    assert float(rows["vimh_cnn_16k"]["mflops_per_sample"]) == pytest.approx(expected, rel=0.01)
    # attention counted (its fused eval-mode kernels are invisible to torch's counter)
    vit = models["vimh_vit_38k"]
    with torch.no_grad(), torch.utils.flop_counter.FlopCounterMode(display=False) as counter:
        vit.train()(*diagrams.example_inputs(vit))  # the unfused path
    per_sample = counter.get_total_flops() / 2 / 1e6
    assert float(rows["vimh_vit_38k"]["mflops_per_sample"]) == pytest.approx(per_sample, rel=0.01)
    assert (tmp_path / "compare.png").stat().st_size > 10_000
    assert "| vimh_cnn_16k | SpectralCNN | 11,842 |" in (tmp_path / "compare.md").read_text()


def test_comparison_log_names_the_model_config_each_line_builds(
    data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """make tdss built ten models under ten identical lines "Instantiating model
    <...MultiheadModule>": each line names its model config and net."""
    archs = "architectures=[vimh_cnn_16k,vimh_cnn_64k,vimh_mlp]"
    cfg = diagram_cfg(data_dir, tmp_path, "diagram=compare", archs)
    with caplog.at_level(logging.INFO, logger="src.utils.instantiators"):
        diagrams.architectures(cfg)
    lines = [r.getMessage() for r in caplog.records if "Instantiating model" in r.getMessage()]
    assert lines == [
        "Instantiating model vimh_cnn_16k <src.models.multihead_module.MultiheadModule> "
        "with net <src.vimh.spectral_cnn.SpectralCNN>",
        "Instantiating model vimh_cnn_64k <src.models.multihead_module.MultiheadModule> "
        "with net <src.vimh.spectral_cnn.SpectralCNN>",
        "Instantiating model vimh_mlp <src.models.multihead_module.MultiheadModule> "
        "with net <src.vimh.spectral_mlp.SpectralMLP>",
    ]


def test_graph_without_graphviz_says_how_to_install_it(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(diagrams.shutil, "which", lambda _: None)
    cfg = diagram_cfg(data_dir, tmp_path / "out", "diagram=graph")
    with pytest.raises(UserInputError, match="make graphviz"):
        diagrams.draw(cfg)
    assert not (tmp_path / "out").exists()  # stopped before any work


def test_unknown_architecture_is_named(data_dir: Path, tmp_path: Path) -> None:
    cfg = diagram_cfg(data_dir, tmp_path, "diagram=compare", "architectures=[vimh_cnn_1k]")
    with pytest.raises(UserInputError, match="vimh_cnn_1k, which is not a model config"):
        diagrams.draw(cfg)
