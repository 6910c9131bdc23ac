"""Command lines that mix options and Hydra overrides, and the tables such tools print."""

from __future__ import annotations

import argparse
import importlib.util

from src.utils.argv import parse_with_overrides
from tests.conftest import ROOT


def test_overrides_anywhere_even_after_a_list_option() -> None:
    """argparse alone takes ``key=value`` after ``--experiments a b`` for a third name."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--experiments", nargs="+", default=["x"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("overrides", nargs="*")
    line = ["--experiments", "vimh_cnn", "vimh_vit", "trainer.max_epochs=2", "~logger"]
    args, overrides = parse_with_overrides(parser, [*line, "--epochs", "5", "+a.b=1"])
    assert args.experiments == ["vimh_cnn", "vimh_vit"] and args.epochs == 5
    assert overrides == ["trainer.max_epochs=2", "~logger", "+a.b=1"]


def test_compare_architectures_table_keeps_long_metric_names_apart() -> None:
    """`make ca`'s header ran `note_number/f1_macronote_number/precision_macro` together."""
    path = ROOT / "benchmarks" / "compare_architectures.py"
    spec = importlib.util.spec_from_file_location("compare_architectures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    names = ["note_number/f1_macro", "note_number/precision_macro"]
    rows = {
        "vimh_cnn": {"params": 64_000, names[0]: 0.5, names[1]: 0.25, "seconds": 12.0},
        "vimh_convnext": {"params": 1_234_567, names[0]: 0.75, "seconds": 100.0},
    }
    header, cnn, convnext = module.table(rows).splitlines()
    assert header.split() == ["experiment", "params", *names, "seconds"]
    assert cnn.split() == ["vimh_cnn", "64,000", "0.5000", "0.2500", "12.0000"]
    assert convnext.split() == ["vimh_convnext", "1,234,567", "0.7500", "nan", "100.0000"]
    assert len({len(line) for line in (header, cnn, convnext)}) == 1  # one set of columns
