"""Compare the multihead nets on one VIMH task: parameters, what each head learnt, time.

Trains each experiment (``vimh_cnn``, ``vimh_vit``, ``vimh_convnext`` by
default) for a few epochs on the same generated simple_saw data set and
prints one row per net: its parameter count, each head's test accuracy or
MAE (parameter units), the selection score and the wall time of fit + test.
The data set is generated under ``--data-dir`` on first use and reused after.

Usage: ``make ca`` or ``python benchmarks/compare_architectures.py [--epochs 3]
[--experiments vimh_cnn vimh_vit] [overrides ...]`` (overrides as for train.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import rootutils

ROOT = rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import open_dict  # noqa: E402

from src.train import train  # noqa: E402
from src.utils.argv import parse_with_overrides  # noqa: E402

EXPERIMENTS = ("vimh_cnn", "vimh_vit", "vimh_convnext")


def run(experiment: str, epochs: int, data_dir: str, overrides: list[str]) -> dict[str, float]:
    """Fit and test one experiment in a temporary run directory: its test metrics."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(
            "train.yaml",
            [
                f"experiment={experiment}",
                f"trainer.max_epochs={epochs}",
                f"paths.data_dir={data_dir}",
                "data.generate=true",
                "~logger",
                *overrides,
            ],
            return_hydra_config=True,
        )
    with tempfile.TemporaryDirectory() as run_dir, open_dict(cfg):
        cfg.paths.output_dir = cfg.paths.log_dir = run_dir
        cfg.extras.print_config = False
        cfg.trainer.enable_progress_bar = cfg.trainer.enable_model_summary = False
        for key in ("rich_progress_bar", "model_summary"):
            cfg.callbacks.pop(key, None)
        HydraConfig.instance().set_config(cfg)
        start = time.perf_counter()
        metrics, objects = train(cfg)
        seconds = time.perf_counter() - start
    row = {k.removeprefix("test/"): float(v) for k, v in metrics.items() if k.startswith("test/")}
    row.pop("loss", None)
    row["params"] = sum(p.numel() for p in objects["model"].net.parameters())
    row["seconds"] = seconds
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="training epochs per net")
    parser.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS))
    parser.add_argument("--data-dir", default=str(ROOT / "data"), help="paths.data_dir")
    parser.add_argument("overrides", nargs="*", help="config overrides for every run")
    args, overrides = parse_with_overrides(parser, sys.argv[1:])
    rows = {e: run(e, args.epochs, args.data_dir, overrides) for e in args.experiments}
    print(f"\n{args.epochs} epochs each (test split)")
    print(table(rows))


def table(rows: dict[str, dict[str, float]]) -> str:
    """One row per experiment, a column per figure, each column as wide as its longest
    name or value plus two spaces (fixed widths ran long metric names together)."""
    metrics = sorted({k for row in rows.values() for k in row} - {"params", "seconds"})
    columns = ["params", *metrics, "seconds"]
    lines = [["experiment", *columns]] + [
        [e, *(f"{r[c]:,.0f}" if c == "params" else f"{r.get(c, float('nan')):.4f}" for c in columns)]
        for e, r in rows.items()
    ]  # fmt: skip
    widths = [max(len(line[i]) for line in lines) + 2 for i in range(len(lines[0]))]
    return "\n".join(
        line[0].ljust(widths[0]) + "".join(v.rjust(w) for v, w in zip(line[1:], widths[1:], strict=True))
        for line in lines
    )  # fmt: skip


if __name__ == "__main__":
    main()
