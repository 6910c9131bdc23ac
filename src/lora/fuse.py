"""Fuse LoRA adapters of one base and test the result on every source task.

``python src/lora/fuse.py adapters=[<run>,<run>] weights=[1,1] method=ties``

For each method, the fused adapter is written once per source task, with
that task's output head, in peft's format:
``<output_dir>/<method>/task<i>/adapter_config.json`` and
``adapter_model.safetensors``. Each is tested on its task's test split, and
a table of the metric per method and task is printed and saved as
``<output_dir>/fusion.csv``; its first row, ``separate``, is each task's
own adapter, the ceiling a fusion aims at.
"""

from __future__ import annotations

import csv
from pathlib import Path

import hydra
import rootutils
import torch
from lightning import LightningDataModule
from omegaconf import DictConfig

rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.lora.fusion import (  # noqa: E402  (needs the root on sys.path)
    SVD_METHODS,
    check_fusable,
    fuse,
    is_lora_weight,
    read_adapter_config,
    svd_skip_reason,
    with_head,
)
from src.lora.runs import LoRARun  # noqa: E402
from src.utils.errors import UserInputError, exit_on_user_error  # noqa: E402
from src.utils.extras import extras  # noqa: E402


def score_adapter(
    cfg: DictConfig, run: LoRARun, datamodule: LightningDataModule, adapter: Path
) -> float:
    """The run's selection metric (``test/acc`` for classification) with ``adapter``."""
    module = run.adapted_module(datamodule, adapter)
    trainer = hydra.utils.instantiate(
        cfg.trainer,
        logger=False,
        callbacks=[],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    metrics = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    return float(metrics[module.hparams.monitor.replace("val/", "test/", 1)])


def fuse_adapters(cfg: DictConfig) -> dict[str, dict[str, float]]:
    """Fuse ``cfg.adapters`` by every ``cfg.method``; returns {method: {task: metric}}."""
    runs = {f"task{i}": LoRARun.read(r) for i, r in enumerate(cfg.adapters, start=1)}
    methods = [cfg.method] if isinstance(cfg.method, str) else list(cfg.method)
    weights = [1.0] * len(runs) if cfg.weights is None else [float(w) for w in cfg.weights]
    if len(weights) != len(runs):
        raise UserInputError(f"weights={weights} must give one weight per adapter ({len(runs)}).")
    check_fusable(
        {task: read_adapter_config(run.adapter_dir) for task, run in runs.items()}, methods
    )
    data = {task: run.datamodule() for task, run in runs.items()}
    results = {
        "separate": {t: score_adapter(cfg, r, data[t], r.adapter_dir) for t, r in runs.items()},
        "base": base_scores(cfg, runs, data),
    }
    first_task, first_run = next(iter(runs.items()))
    ranks = [read_adapter_config(run.adapter_dir)["r"] for run in runs.values()]
    skipped: dict[str, str] = {}
    for method in methods:
        reason = None
        if method in SVD_METHODS:
            reason = svd_skip_reason(first_run.adapter_dir, cfg.svd_rank or max(ranks))
        if reason:
            skipped[method] = reason
            continue
        torch.manual_seed(cfg.seed)  # DARE drops at random
        config, fused = fuse(
            first_run.plain_module(data[first_task]).net,
            [run.adapter_dir for run in runs.values()],
            weights,
            method,
            density=cfg.density,
            majority_sign_method=cfg.majority_sign_method,
            svd_rank=cfg.svd_rank,
        )
        results[method] = {}
        for task, run in runs.items():
            directory = Path(cfg.paths.output_dir) / method / task
            with_head(directory, config, fused, run.adapter_dir)
            results[method][task] = score_adapter(cfg, run, data[task], directory)
    report(results, runs, Path(cfg.paths.output_dir) / "fusion.csv", skipped)
    return results


def base_scores(
    cfg: DictConfig, runs: dict[str, LoRARun], data: dict[str, LightningDataModule]
) -> dict[str, float]:
    """The floor: each task's model with its own head and no low-rank update (the base
    net's layers as they are), written as an adapter whose updates are zero."""
    from peft import LoraConfig, load_peft_weights

    scores = {}
    for task, run in runs.items():
        zero = {
            k: torch.zeros_like(v)
            for k, v in load_peft_weights(str(run.adapter_dir)).items()
            if is_lora_weight(k)
        }
        directory = Path(cfg.paths.output_dir) / "base" / task
        with_head(
            directory, LoraConfig.from_pretrained(str(run.adapter_dir)), zero, run.adapter_dir
        )
        scores[task] = score_adapter(cfg, run, data[task], directory)
    return scores


def report(
    results: dict[str, dict[str, float]],
    runs: dict[str, LoRARun],
    path: Path,
    skipped: dict[str, str] | None = None,
) -> None:
    """The table of metrics (one row per method, ``base`` and ``separate`` first), also
    as ``fusion.csv``; a method that could not run has its reason in every cell."""
    tasks = list(runs)
    rows = [[method, *(f"{scores[t]:.4f}" for t in tasks)] for method, scores in results.items()]
    rows += [[method, *(["skipped"] * len(tasks))] for method in skipped or {}]
    with open(path, "w", newline="") as file:
        csv.writer(file).writerows([["method", *tasks], *rows])
    width = max(len(cell) for cell in ["method", *tasks, *results]) + 3
    print("Test metric of each fused adapter on each source task:")
    print("".join(h.ljust(width) for h in ["method", *tasks]))
    for row in rows:
        print("".join(cell.ljust(width) for cell in row))
    for method, reason in (skipped or {}).items():
        print(f"{method} {reason}")
    for task, run in runs.items():
        print(f"{task}: {run.run_dir}")
    print(f"Fused adapters and fusion.csv in {path.parent}")


@hydra.main(version_base="1.3", config_path="../../configs", config_name="fuse.yaml")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    extras(cfg)
    fuse_adapters(cfg)


if __name__ == "__main__":
    main()
