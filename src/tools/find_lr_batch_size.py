"""Find a learning rate (or a batch size) for any experiment, before training.

``python src/tools/find_lr_batch_size.py experiment=...`` runs Lightning's learning-rate range
test: training steps with an exponentially growing learning rate, the loss
recorded at each. It writes the loss-against-lr plot (``lr_find.png``) and a
JSON with the suggestion (``lr_find.json``) into the run directory, and prints
the override to use. ``find=batch_size`` doubles the batch size until a step
fails (out of memory) or the search ends, and prints that override instead.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import hydra
import rootutils
from omegaconf import DictConfig

rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.utils.errors import UserInputError, exit_on_user_error  # noqa: E402
from src.utils.extras import extras  # noqa: E402
from src.utils.instantiators import instantiate_run  # noqa: E402
from src.utils.run_status import task_wrapper  # noqa: E402


def find_lr(cfg: DictConfig, objects: dict[str, Any], out: Path) -> dict[str, Any]:
    from lightning.pytorch.tuner import Tuner

    finder = Tuner(objects["trainer"]).lr_find(
        objects["model"], datamodule=objects["datamodule"], update_attr=False, **cfg.lr_find
    )
    losses = [float(v) for v in finder.results["loss"]]
    suggestion = finder.suggestion()
    report: dict[str, Any] = {"lr": finder.results["lr"], "loss": losses, "suggestion": suggestion}
    figure = finder.plot(suggest=suggestion is not None)
    figure.savefig(out / "lr_find.png", dpi=100, bbox_inches="tight")
    if suggestion is None:
        finite = sum(math.isfinite(v) for v in losses)
        report["why_none"] = (
            f"the loss curve has {finite} finite points of {len(losses)}: too few to find the "
            "steepest descent. Raise lr_find.num_training, or lower lr_find.max_lr if the "
            "loss diverged early."
        )
        print(f"No learning rate suggested: {report['why_none']}")
    else:
        print(
            f"Suggested learning rate: {suggestion:.3g}\nUse: model.optimizer.lr={suggestion:.3g}"
        )
    return report


def find_batch_size(cfg: DictConfig, objects: dict[str, Any]) -> dict[str, Any]:
    from lightning.pytorch.tuner import Tuner

    datamodule = objects["datamodule"]
    if not hasattr(datamodule, "batch_size"):
        raise UserInputError(f"{type(datamodule).__name__} has no batch_size to search.")
    size = Tuner(objects["trainer"]).scale_batch_size(
        objects["model"], datamodule=datamodule, **cfg.batch_size_find
    )
    # the search stops at the first size at or past the training set's size
    train_size = len(getattr(datamodule.train_dataloader(), "dataset", ()))
    if train_size and size > train_size:
        size = train_size
    print(f"Largest batch size that ran: {size}\nUse: data.batch_size={size}")
    return {"batch_size": size}


@task_wrapper
def search(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    if cfg.find not in ("lr", "batch_size"):
        raise UserInputError(f"find={cfg.find} is not a search: use find=lr or find=batch_size.")
    objects = instantiate_run(cfg)
    out = Path(cfg.paths.output_dir)
    if cfg.find == "lr":
        report = find_lr(cfg, objects, out)
    else:
        report = find_batch_size(cfg, objects)
    (out / f"{cfg.find}_find.json").write_text(json.dumps(report, indent=2) + "\n")
    found = report.get("suggestion", report.get("batch_size"))
    return ({"found": found} if found is not None else {}), objects


@hydra.main(version_base="1.3", config_path="../../configs", config_name="lr_find.yaml")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    extras(cfg)
    search(cfg)


if __name__ == "__main__":
    main()
