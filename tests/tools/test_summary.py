"""make summary: per-layer parameters, shapes and FLOPs of any model config, untrained."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from src.tools.summary import summarize
from tests.conftest import compose_config


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_summary_counts_parameters_shapes_and_flops(model: str, tmp_path: Path) -> None:
    cfg = compose_config("summary.yaml", [f"model={model}"], tmp_path)
    text = summarize(cfg)
    import hydra

    from src.utils.instantiators import instantiate_model

    built = instantiate_model(cfg.model, hydra.utils.instantiate(cfg.data))
    total = sum(p.numel() for p in built.parameters())
    shown = re.search(r"([\d.]+ [KM]?)\s+Total params", text).group(1)
    value = float(shown.split()[0]) * {"K": 1e3, "M": 1e6}.get(shown.split()[-1], 1)
    assert value == pytest.approx(total, rel=0.01)
    assert "[2, 1, 8, 8]" in text and "[2, 10]" in text  # input and output shapes
    flops = re.search(r"([\d.]+) ([KMG]?)\s*Total Flops", text)
    assert flops and float(flops.group(1)) > 0


def test_summary_says_its_flops_are_of_the_example_batch(tmp_path: Path) -> None:
    """The table's Total Flops count the whole example batch: the summary says so and
    gives the figure per sample, the one make tdss compares."""
    cfg = compose_config("summary.yaml", ["model=mlp", "example_batch_size=4"], tmp_path)
    text = summarize(cfg)
    total = re.search(r"([\d.]+) K\s*Total Flops", text)
    per_sample = re.search(
        r"of the example batch of 4 samples \(example_batch_size\): ([\d.]+) K", text
    )
    assert total and per_sample, text[-400:]
    assert float(per_sample.group(1)) == pytest.approx(float(total.group(1)) / 4, rel=0.01)
