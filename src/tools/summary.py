"""Print a model's parameter count per layer, input/output shapes and FLOPs.

The model is built exactly as ``train.py`` builds it (data-dependent ``???``
values from the data module) and fed one real example batch, so the shapes and
FLOPs are those of training. Nothing is trained or written besides the log.
"""

from __future__ import annotations

from typing import Any

import hydra
import rootutils
from omegaconf import DictConfig

rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.utils.entry_point import entry_point  # noqa: E402
from src.utils.instantiators import instantiate_model  # noqa: E402


def example_data(cfg: DictConfig) -> tuple[Any, Any]:
    """The configured data module, set up for fitting, and its first training batch."""
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule, next(iter(datamodule.train_dataloader()))


def example_model(
    cfg: DictConfig,
    model_cfg: DictConfig | None = None,
    data: tuple[Any, Any] | None = None,
    name: str | None = None,
) -> Any:
    """The configured model (``model_cfg``, else ``cfg.model``), untrained, in eval mode,
    with ``example_input_array`` set to the net's inputs from the first
    ``cfg.example_batch_size`` samples of a real batch (of ``data``, when given); ``name``
    (the model config's) goes into the log line."""
    datamodule, batch = example_data(cfg) if data is None else data
    model = instantiate_model(cfg.model if model_cfg is None else model_cfg, datamodule, name)
    inputs = tuple(t[: cfg.example_batch_size] for t in model.net_inputs(batch))
    model.example_input_array = inputs if len(inputs) > 1 else inputs[0]
    return model.eval()


def summarize(cfg: DictConfig, model: Any = None) -> str:
    """The per-layer table of ``model`` (built from ``cfg`` when not given)."""
    from lightning.pytorch.utilities.model_summary import ModelSummary
    from lightning.pytorch.utilities.model_summary.model_summary import (
        get_human_readable_count,
    )

    model = example_model(cfg) if model is None else model
    summary = ModelSummary(model, max_depth=cfg.depth)
    inputs = model.example_input_array
    samples = len(inputs[0] if isinstance(inputs, tuple) else inputs)
    per_sample = get_human_readable_count(round(summary.total_flops / samples))
    # the table's FLOPs are of the whole example batch, whose size its shapes start with
    return (
        f"{summary}\nFLOPs are of the example batch of {samples} samples "
        f"(example_batch_size): {per_sample} per sample"
    )


@entry_point("summary.yaml")
def main(cfg: DictConfig) -> None:
    print(summarize(cfg))


if __name__ == "__main__":
    main()
