"""TensorBoard's HPARAMS record of a run, written so the table shows what matters first.

Lightning's ``TensorBoardLogger.log_hyperparams(params, metrics)`` writes the same three
summaries (experiment, session start, session end), but TensorBoard then orders the
hyperparameters by name and ticks the first five: ``callbacks/...`` paths, never the
learning rate a sweep varied. TensorBoard puts the hyperparameters marked ``differs``
first, so this marks those the job's overrides set.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def flat_hparams(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"lr": 0.1}}`` -> ``{"model/lr": 0.1}``; values TensorBoard cannot
    hold (lists, None, objects) as their text, as Lightning's logger writes them."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_hparams(value, f"{name}/"))
        else:
            keep = isinstance(value, bool | int | float | str)
            flat[name] = value if keep else str(value)
    return flat


def overridden(names: Iterable[str], overrides: Iterable[str]) -> set[str]:
    """The hyperparameter names the overrides set: ``model.optimizer.lr=0.1`` sets
    ``model/optimizer/lr``; a config-group choice (``model=cnn``) the ``_target_`` entries
    under ``model/``."""
    names = list(names)
    found: set[str] = set()
    for override in overrides:
        path = override.lstrip("+~").split("=", 1)[0].replace(".", "/")
        exact = [n for n in names if n == path]
        targets = [n for n in names if n.startswith(f"{path}/") and n.endswith("/_target_")]
        found.update(exact or targets)
    return found


def write_hparams(
    logger: Any, metrics: dict[str, float], overrides: Iterable[str], step: int
) -> None:
    """Write the run's hyperparameters (``logger.hparams``) with its metrics into its
    TensorBoard events, those ``overrides`` set marked as the ones that differ."""
    from omegaconf import DictConfig, OmegaConf
    from tensorboard.plugins.hparams import plugin_data_pb2
    from torch.utils.tensorboard.summary import hparams

    params = logger.hparams
    if isinstance(params, DictConfig):
        params = OmegaConf.to_container(params, resolve=True)
    flat = flat_hparams(params)
    experiment, start, end = hparams(flat, metrics)
    # the experiment summary's plugin data: one HParamsPluginData holding the experiment
    value = experiment.value[0]
    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    marked = overridden(flat, overrides)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in marked
    value.metadata.plugin_data.content = data.SerializeToString()

    logger.log_metrics(metrics, step)
    # Lightning's own log_hyperparams writes through this same (private) writer accessor
    writer = logger.experiment._get_file_writer()
    for summary in (experiment, start, end):
        writer.add_summary(summary, step)
    logger.save()
