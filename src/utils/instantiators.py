"""Build callbacks, loggers and the model from their config nodes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hydra
from lightning import Callback, LightningDataModule, LightningModule
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf, open_dict

from src.callbacks.optuna_trial import trial_callbacks
from src.data.spec import answer_with, build_datamodule
from src.utils.checkpoint_io import with_atomic_checkpoints
from src.utils.errors import UserInputError
from src.utils.hook_dispatch import NoProfiler, skip_empty_batch_hooks
from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__)


NONE_CONFIGURED = {
    "callbacks": "No callbacks configured (callbacks: null): Lightning's default checkpoint, "
    "our progress bar and model summary (unless the trainer turns them off).",
    "loggers": "No loggers configured (logger: null): no metric history is written (the "
    "final metrics are in run_status.json).",
}


def _instantiate_each(cfg: DictConfig | None, kind: str, base: type) -> list[Any]:
    objects: list[Any] = []
    if not cfg:  # asked for (debug configs, the finders, logger=none): said, not warned about
        log.info(NONE_CONFIGURED.get(kind, f"No {kind} configured."))
        return objects
    if not isinstance(cfg, DictConfig):
        raise UserInputError(f"The {kind} config must be a mapping of name to config.")
    for name, node in cfg.items():
        if isinstance(node, DictConfig) and "_target_" in node:
            log.info(f"Instantiating {kind[:-1]} <{node._target_}>")
            obj = hydra.utils.instantiate(node)
            if not isinstance(obj, base):
                raise UserInputError(
                    f"{kind}.{name} builds a {type(obj).__name__}, not a {base.__name__}."
                )
            objects.append(obj)
    return objects


def instantiate_callbacks(cfg: DictConfig | None) -> list[Callback]:
    return _instantiate_each(cfg, "callbacks", Callback)


def instantiate_loggers(cfg: DictConfig | None) -> list[Logger]:
    return _instantiate_each(cfg, "loggers", Logger)


def missing_keys(node: Any, prefix: str) -> list[str]:
    """Dotted paths of the ``???`` values left in a config node."""
    found: list[str] = []
    if isinstance(node, DictConfig):
        for key in node:
            path = f"{prefix}.{key}"
            if OmegaConf.is_missing(node, key):
                found.append(path)
            else:
                found += missing_keys(node[key], path)
    return found


def fill_from_data(node: DictConfig, spec: dict[str, Any]) -> None:
    """Fill every ``???`` value whose key the data module's ``spec`` names, at any depth."""
    for key in node:
        if OmegaConf.is_missing(node, key):
            if key in spec:
                node[key] = spec[key]
        elif isinstance(node[key], DictConfig):
            fill_from_data(node[key], spec)


def instantiate_model(
    model_cfg: DictConfig, datamodule: LightningDataModule, name: str | None = None
) -> LightningModule:
    """Instantiate the model, taking the values marked ``???`` from ``datamodule.spec``.

    Model configs leave data-dependent values (input shape, number of classes,
    heads) as ``???``; the data module knows them. A value given on the command
    line (``model.net.num_classes=5``) is kept. ``name``: the model config's name, for
    the log line (``make tdss`` builds several).
    """
    root = model_cfg._get_root()
    if root is not model_cfg and isinstance(root.get("data"), DictConfig):
        answer_with(root.data, datamodule)  # ${data_spec:...} asks this data module
    cfg = model_cfg.copy()
    spec = dict(getattr(datamodule, "spec", {}) or {})
    fill_from_data(cfg, spec)
    left = missing_keys(cfg, "model")
    if left:
        raise UserInputError(
            f"{', '.join(left)} must be set: the data module {type(datamodule).__name__} "
            f"provides only {sorted(spec) or 'nothing'}. Set it on the command line "
            f"({left[0]}=...); or, where the data should provide it, choose a model made for "
            f"this data (model=...): {cfg.get('_target_', '?').rsplit('.', 1)[-1]} and "
            f"{type(datamodule).__name__} may not go together."
        )
    log.info(f"Instantiating model {describe_model(cfg, name)}")
    with open_dict(cfg):
        wrap = cfg.pop("lora", None)
    if wrap is None:
        return hydra.utils.instantiate(cfg)
    # model.lora (configs/model/lora/) wraps the net before the task module gets it
    net = hydra.utils.instantiate(wrap)(hydra.utils.instantiate(cfg.net))
    return hydra.utils.instantiate(cfg, net=net)


def describe_model(cfg: DictConfig, name: str | None) -> str:
    """``vimh_cnn_16k <...MultiheadModule> with net <...SpectralCNN>``: the task module
    is shared by many model configs, so the name and the net tell them apart."""
    net = cfg.get("net")
    with_net = (
        f" with net <{net._target_}>" if isinstance(net, DictConfig) and net.get("_target_") else ""
    )
    return f"{name + ' ' if name else ''}<{cfg._target_}>{with_net}"


def default_model_summary(callbacks: list[Callback], trainer_cfg: DictConfig) -> list[Callback]:
    """Our summary where a run configures none (``callbacks=null``, the debug configs):
    Lightning's default would show a FLOPs column of zeros (src/callbacks/model_summary.py)."""
    from lightning.pytorch.callbacks import ModelSummary as LightningSummary

    from src.callbacks.model_summary import ModelSummary

    wanted = trainer_cfg.get("enable_model_summary", True) is not False
    if not wanted or any(isinstance(c, LightningSummary) for c in callbacks):
        return []
    return [ModelSummary(max_depth=1)]


def default_progress_bar(callbacks: list[Callback], trainer_cfg: DictConfig) -> list[Callback]:
    """Our bar where a run configures none (``callbacks=null``, the debug configs,
    ``callbacks=none``): Lightning's default wrapped the metrics between a name and its
    value in a log file and showed each epoch the previous one's ``train/loss``
    (src/callbacks/progress_bar.py)."""
    from lightning.pytorch.callbacks import ProgressBar

    from src.callbacks.progress_bar import RichProgressBar

    wanted = trainer_cfg.get("enable_progress_bar", True) is not False
    if not wanted or any(isinstance(c, ProgressBar) for c in callbacks):
        return []
    return [RichProgressBar()]


def instantiate_run(cfg: DictConfig, more_callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Data module, model, callbacks, loggers and trainer of a run, in that order;
    ``more_callbacks`` are the entry point's own (src/train.py's metric check)."""
    log.info(f"Instantiating datamodule <{cfg.data._target_}>")
    # the data module that answers the model config's ${data_spec:...} values
    datamodule: LightningDataModule = build_datamodule(cfg.data)
    model = instantiate_model(cfg.model, datamodule)
    callbacks = instantiate_callbacks(cfg.get("callbacks"))
    callbacks += trial_callbacks(cfg)  # a job of an Optuna sweep reports to its trial
    callbacks += default_model_summary(callbacks, cfg.trainer)
    callbacks += default_progress_bar(callbacks, cfg.trainer)
    callbacks += more_callbacks
    loggers = instantiate_loggers(cfg.get("logger"))
    log.info(f"Instantiating trainer <{cfg.trainer._target_}>")
    # checkpoints are written atomically (src/utils/checkpoint_io.py) whatever the plug-ins
    plugins = with_atomic_checkpoints(hydra.utils.instantiate(cfg.trainer.get("plugins")))
    extra: dict[str, Any] = {}
    if cfg.trainer.get("profiler") is None:  # Lightning's no-op profiler, ~2 us less a hook
        extra["profiler"] = NoProfiler()
    trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=plugins, **extra
    )
    # with the callbacks Lightning adds (a progress bar, a checkpoint) where none is given
    skip_empty_batch_hooks(trainer.callbacks)  # default callbacks: 4.5 -> 1.1 us a hook
    return {
        "cfg": cfg,
        "datamodule": datamodule,
        "model": model,
        "callbacks": callbacks,
        "logger": loggers,
        "trainer": trainer,
    }
