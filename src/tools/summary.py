"""Print a model's parameter count per layer, input/output shapes and FLOPs.

The model is built exactly as ``train.py`` builds it (data-dependent ``???``
values from the data module) and fed one real example batch, so the shapes and
FLOPs are those of training. Nothing is trained or written besides the log.
"""

from __future__ import annotations

import hydra
import rootutils
from omegaconf import DictConfig

rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.utils.errors import exit_on_user_error  # noqa: E402
from src.utils.instantiators import instantiate_model  # noqa: E402


def summarize(cfg: DictConfig) -> str:
    from lightning.pytorch.utilities.model_summary import ModelSummary

    datamodule = hydra.utils.instantiate(cfg.data)
    model = instantiate_model(cfg.model, datamodule)
    datamodule.prepare_data()
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    inputs = tuple(t[: cfg.example_batch_size] for t in model.net_inputs(batch))
    model.example_input_array = inputs if len(inputs) > 1 else inputs[0]
    model.eval()
    return str(ModelSummary(model, max_depth=cfg.depth))


@hydra.main(version_base="1.3", config_path="../../configs", config_name="summary.yaml")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    print(summarize(cfg))


if __name__ == "__main__":
    main()
