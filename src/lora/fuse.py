"""Fuse LoRA adapters of one base and test the result on every source task.

``python src/lora/fuse.py adapters=[<run>,<run>] weights=[1,1] method=ties``

For each method, the fused adapter is written once per source task, with
that task's output head, as a LoRA run directory ``<output_dir>/<method>/task<i>/``:
the adapter in peft's format in ``adapter/`` (``adapter_config.json``,
``adapter_model.safetensors``), the source run's config in ``.hydra/config.yaml`` and
the task module with the fused adapter in ``checkpoints/epoch_000.ckpt``, so that
``make eval RUN=<output_dir>/<method>/task<i>`` evaluates it and ``make merge-lora
RUN=...`` merges it into the base like any LoRA run. Each is tested on its task's
test split, and a table of the metric per method and task is printed and saved as
``<output_dir>/fusion.csv``; its first rows are ``separate`` (each task's own
adapter, the ceiling a fusion aims at) and ``base`` (no low-rank update, the floor).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hydra
import rootutils
import torch
from lightning import LightningDataModule
from omegaconf import DictConfig, OmegaConf, open_dict

rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.lora.fusion import (  # noqa: E402  (needs the root on sys.path)
    check_fusable,
    fuse,
    is_lora_weight,
    read_adapter_config,
    with_head,
)
from src.lora.net import PEFT_PREFIX  # noqa: E402
from src.lora.runs import ADAPTER_DIR, LoRARun  # noqa: E402
from src.utils.atomic import write_bytes, write_text  # noqa: E402
from src.utils.entry_point import entry_point  # noqa: E402
from src.utils.errors import UserInputError  # noqa: E402

# lines every test of an adapter repeats: Lightning's devices whenever a Trainer is built,
# and the model each adapted module instantiates; fuse tests every adapter on every task (19
# Trainers and 39 models for two tasks and the default methods), the same lines each time
REPEATED = {
    "lightning.pytorch.utilities.rank_zero": ("GPU available", "TPU available", "HPU available"),
    "src.utils.instantiators": ("Instantiating model",),
}


class SaidOnce(logging.Filter):
    """Passes each line that starts with one of ``prefixes`` the first time only."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith(self.prefixes):
            return True
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


@contextmanager
def repeated_lines_once() -> Iterator[None]:
    filters = {name: SaidOnce(prefixes) for name, prefixes in REPEATED.items()}
    for name, once in filters.items():
        logging.getLogger(name).addFilter(once)
    try:
        yield
    finally:
        for name, once in filters.items():
            logging.getLogger(name).removeFilter(once)


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


def write_run(directory: Path, run: LoRARun, datamodule: LightningDataModule) -> Path:
    """Make ``directory`` (its adapter in ``adapter/``) a LoRA run that eval and merge-lora
    read: the source run's config, and a checkpoint of the task module with this adapter
    (laid out as a LoRA training run's: ``net.model.<peft key>``). Returns the adapter dir."""
    import lightning

    module = run.adapted_module(datamodule, directory / ADAPTER_DIR)
    state = {k: v for k, v in module.state_dict().items() if not k.startswith("net.")}
    state.update({f"net.{PEFT_PREFIX}{k}": v for k, v in module.net.state_dict().items()})
    checkpoint = {
        "state_dict": state,
        "epoch": 0,
        "global_step": 0,
        "pytorch-lightning_version": lightning.__version__,
        "fused_from": {"adapter": str(directory / ADAPTER_DIR), "task_run": str(run.run_dir)},
    }
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    write_bytes(directory / "checkpoints" / "epoch_000.ckpt", buffer.getvalue())
    # the fused adapter's rank and scale (peft sets its own: linear halves lora_alpha) are
    # what eval's LoRANet must be built with; the rest is the source run's config
    fused = read_adapter_config(directory / ADAPTER_DIR)
    cfg = run.cfg.copy()
    with open_dict(cfg):
        cfg.model.lora.r, cfg.model.lora.lora_alpha = fused["r"], fused["lora_alpha"]
    write_text(directory / ".hydra" / "config.yaml", OmegaConf.to_yaml(cfg))
    return directory / ADAPTER_DIR


def fuse_adapters(cfg: DictConfig) -> dict[str, dict[str, float]]:
    """Fuse ``cfg.adapters`` by every ``cfg.method``; returns {method: {task: metric}}."""
    with repeated_lines_once():
        return _fuse_adapters(cfg)


def _fuse_adapters(cfg: DictConfig) -> dict[str, dict[str, float]]:
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
    for method in methods:
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
            with_head(directory / ADAPTER_DIR, config, fused, run.adapter_dir)
            write_run(directory, run, data[task])
            results[method][task] = score_adapter(cfg, run, data[task], directory / ADAPTER_DIR)
    report(results, runs, Path(cfg.paths.output_dir) / "fusion.csv")
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
        directory = Path(cfg.paths.output_dir) / "base" / task / ADAPTER_DIR
        with_head(
            directory, LoraConfig.from_pretrained(str(run.adapter_dir)), zero, run.adapter_dir
        )
        scores[task] = score_adapter(cfg, run, data[task], directory)
    return scores


def report(results: dict[str, dict[str, float]], runs: dict[str, LoRARun], path: Path) -> None:
    """The table of metrics (one row per method, ``base`` and ``separate`` first), also
    as ``fusion.csv``."""
    tasks = list(runs)
    rows = [[method, *(f"{scores[t]:.4f}" for t in tasks)] for method, scores in results.items()]
    with open(path, "w", newline="") as file:
        csv.writer(file).writerows([["method", *tasks], *rows])
    width = max(len(cell) for cell in ["method", *tasks, *results]) + 3
    monitor = str(next(iter(runs.values())).cfg.model.get("monitor", "val/acc"))
    metric = monitor.replace("val/", "test/", 1)
    print(
        f"{metric} of each fused adapter on each source task's test split (base: the base "
        "net with each task's own head and no low-rank update; separate: each task's own "
        "adapter):"
    )
    print("".join(h.ljust(width) for h in ["method", *tasks]))
    for row in rows:
        print("".join(cell.ljust(width) for cell in row))
    for task, run in runs.items():
        print(f"{task}: {run.run_dir}")
    print(f"Fused adapters and fusion.csv in {path.parent}")
    fused = next((m for m in results if m not in ("separate", "base")), None)
    if fused:
        where = path.parent / fused / tasks[0]
        print(f"Evaluate a fused adapter: make eval RUN={where}")
        print(f"Merge it into the base:   make merge-lora RUN={where}")


@entry_point("fuse.yaml")
def main(cfg: DictConfig) -> None:
    fuse_adapters(cfg)


if __name__ == "__main__":
    main()
