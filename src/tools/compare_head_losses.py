"""Which head loss learns note_velocity best: the multihead CNN on one generated simple_saw
set, once per loss, and the test MAE of velocity (and accuracy of pitch) per run; the table
ranks the losses by velocity MAE (mean ± sd over seeds), with the mean predictor's last.

    python src/tools/compare_head_losses.py                # 1,000 notes, 8 epochs, every loss
    python src/tools/compare_head_losses.py --size 2000 --epochs 20 --seeds 1 2 3

Every run shares the data, the seed and the settings of ``experiment=vimh_cnn`` but for
``data.head_kinds`` (velocity's kind) and ``model.head_losses`` (its loss); a metric
comparison, not a speed one. Runs go to ``--out`` (default ``logs/compare_head_losses``),
and the table, also written there as ``table.md``, is printed at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import rootutils

ROOT = rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.utils.argv import parse_with_overrides  # noqa: E402

#: (velocity's head kind, its loss) per run
VARIANTS = [
    ("regression", "l1"),
    ("regression", "mse"),
    ("regression", "huber"),
    ("classification", "cross_entropy"),
    ("classification", "label_smoothing"),
    ("classification", "soft_targets"),
    ("ordinal", "distance"),
    ("ordinal", "coral"),
]


def run_one(
    kind: str, loss: str, out: Path, size: int, epochs: int, seed: int, extra: list[str]
) -> dict[str, float]:
    """Train one variant; its test metrics as floats."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from src.train import train
    from src.utils.extras import extras

    run_dir = out / f"{kind}_{loss}_seed{seed}"
    data_parent = out / "data"
    overrides = [
        "experiment=vimh_cnn",
        f"paths.data_dir={data_parent}",
        f"data.generation.size={size}",
        f"data.data_dir={data_parent / f'vimh-32x32x1_8000Hz_1p0s_{size}dss_simple_saw_2p'}",
        f"trainer.max_epochs={epochs}",
        f"seed={seed}",
        f"data.head_kinds={{note_velocity: {kind}}}",
        f"model.head_losses={{note_velocity: {loss}}}",
        *extra,
    ]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(config_name="train.yaml", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = cfg.paths.log_dir = str(run_dir)
        cfg.extras.print_config = False
        cfg.trainer.enable_progress_bar = cfg.trainer.enable_model_summary = False
        for key in ("rich_progress_bar", "model_summary"):
            cfg.callbacks.pop(key, None)
    HydraConfig.instance().set_config(cfg)
    extras(cfg)  # what src/train.py does first: the known-noise warnings stay silent
    metrics, objects = train(cfg)
    values = {k: float(v) for k, v in metrics.items()}
    values.update(velocity_errors(objects["model"], objects["datamodule"]))
    return values


def velocity_errors(model: Any, datamodule: Any) -> dict[str, float]:
    """Test MAE of velocity in parameter units for every head kind (HeadMetrics reports
    none for a classification head), and the mean predictor's: the training split's mean
    velocity for every test note. ``model`` holds the weights the test ran on (Lightning
    loads the best checkpoint into it)."""
    import torch

    from src.models.components.head_kinds import kind_of
    from src.models.components.head_specs import label_values

    index = next(i for i, h in enumerate(model.heads) if h["name"] == "note_velocity")
    head = model.heads[index]
    train_values = label_values(datamodule.data_train.tensors[1][:, index], head)
    errors, reference = [], []
    model.eval()
    with torch.no_grad():
        for batch in datamodule.test_dataloader():
            batch = [t.to(model.device) for t in batch]
            truth = label_values(batch[1][:, index], head)
            predicted = kind_of(head).predicted_values(
                head, model(*model.net_inputs(batch))[head["name"]]
            )
            errors.append((predicted - truth).abs().cpu())
            reference.append((truth - train_values.mean()).abs().cpu())
    return {
        "velocity_mae": float(torch.cat(errors).mean()),
        "mean_predictor_mae": float(torch.cat(reference).mean()),
    }


def cell(values: list[float], digits: int) -> str:
    """Mean ± sample standard deviation (the mean alone for one value, "-" for none)."""
    if not values:
        return "-"
    spread = f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.{digits}f}{spread}"


def table(results: dict[tuple[str, str], list[dict[str, float]]]) -> str:
    """Markdown, best velocity MAE first, the mean predictor's row last as the reference."""
    lines = [
        "| loss | velocity head | test velocity MAE | test velocity acc | test pitch acc | seeds |",
        "|---|---|---|---|---|---|",
    ]
    ranked = sorted(
        results.items(), key=lambda item: statistics.mean(r["velocity_mae"] for r in item[1])
    )
    for (kind, loss), runs in ranked:
        cells = [
            cell([r["velocity_mae"] for r in runs], 2),
            # a regression head predicts no class: no accuracy
            cell([r[k] for r in runs if (k := "test/note_velocity/acc") in r], 3),
            cell([r["test/note_number/acc"] for r in runs], 3),
        ]
        lines.append(f"| {loss} | {kind} | {' | '.join(cells)} | {len(runs)} |")
    if results:  # one data set per seed, shared by every variant: one value per seed
        per_seed = [r["mean_predictor_mae"] for r in next(iter(results.values()))]
        lines.append(f"| (mean predictor) | - | {cell(per_seed, 2)} | - | - | {len(per_seed)} |")
    return "\n".join(lines)


def compare(
    out: Path,
    size: int,
    epochs: int,
    seeds: list[int],
    variants: list[tuple[str, str]],
    extra: list[str] | None = None,
) -> dict[tuple[str, str], list[dict[str, float]]]:
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    total = len(seeds) * len(variants)
    for seed in seeds:
        for kind, loss in variants:
            metrics = run_one(kind, loss, out, size, epochs, seed, list(extra or []))
            results.setdefault((kind, loss), []).append(metrics)
            done = sum(map(len, results.values()))
            print(
                f"[{done}/{total}] {loss} ({kind} velocity head), seed {seed}: "
                f"test velocity MAE {metrics['velocity_mae']:.2f}",
                flush=True,
            )
    return results


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The options and the Hydra overrides (anywhere on the line) of a command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1000, help="notes generated (train + test)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[12345], help="one run per seed")
    parser.add_argument("--out", type=Path, default=ROOT / "logs" / "compare_head_losses")
    parser.add_argument(
        "overrides", nargs="*", help="more Hydra overrides for every run (key=value, anywhere)"
    )
    return parse_with_overrides(parser, argv)


def main() -> None:
    args, overrides = parse(sys.argv[1:])
    results = compare(args.out, args.size, args.epochs, args.seeds, VARIANTS, overrides)
    text = table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
