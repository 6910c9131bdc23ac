"""Predict with a trained model of any task: ``make predict RUN=<run> INPUT=<input>``.

Regression: ``python src/tools/predict.py run_dir=<a training run> input=rows.csv``
writes the rows with their predictions, in the targets' original units, to
``rows_predictions.csv`` beside them. ``+features=[...]`` predicts one row and
prints it. The feature and target scaling are the training run's, read from
the checkpoint: the training data need not be at hand.

Classification (``input=`` arrays as .npy/.csv, or image files: a folder, a file or
``input=[a.png,b.png]``; an audio-folder run: WAV files, given alike) writes the
``top_k`` classes by name with their probabilities; a multihead VIMH run (``input=`` a
VIMH record file) writes each head's value in parameter units: see ``predict_classes``.
A summary is printed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import pandas as pd
import rootutils
import torch
from lightning import LightningModule
from omegaconf import DictConfig

rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.data.audio_folder_datamodule import AudioFolderDataModule  # noqa: E402  (needs the root)
from src.data.components.batches import tensor_loader  # noqa: E402
from src.data.components.tables import read_table  # noqa: E402
from src.data.regression_datamodule import RegressionDataModule  # noqa: E402
from src.models.multihead_module import MultiheadModule  # noqa: E402
from src.tools.predict_classes import predict_audio, predict_classes, predict_heads  # noqa: E402
from src.utils.entry_point import entry_point  # noqa: E402
from src.utils.errors import UserInputError  # noqa: E402
from src.utils.run_status import task_wrapper  # noqa: E402
from src.utils.training_run import TrainingRun  # noqa: E402

PREFIX = "predicted_"  # prediction columns: predicted_<target>


def default_output(cfg: DictConfig) -> tuple[Path, Path | None]:
    """(Where the predictions go unless ``output`` says, the input file if one):
    beside an input file or folder, in the tool's run directory for a list of files."""
    if not isinstance(cfg.input, (str, Path)):
        return Path(cfg.paths.output_dir) / "predictions.csv", None
    source = Path(cfg.input)
    if source.is_dir():
        source = source.resolve()  # input=. or input=..: a folder with a name
        return source.with_name(f"{source.name or 'root'}_predictions.csv"), None
    return source.with_name(f"{source.stem}_predictions.csv"), source


def output_path(cfg: DictConfig) -> Path:
    """Where the predictions go; checked before any work, so nothing is overwritten."""
    output, source = default_output(cfg)
    output = Path(cfg.output) if cfg.get("output") else output
    if output.suffix.lower() != ".csv":
        raise UserInputError(f"output={output}: predictions are written as CSV, name a .csv file.")
    if source is not None and output.resolve() == source.resolve():
        raise UserInputError(f"output={output} is the input file: name another file.")
    if output.exists() and not cfg.get("overwrite"):
        raise UserInputError(
            f"{output} exists, and predictions are not written over it. Name another file "
            "(output=...), or set overwrite=true to replace it."
        )
    return output


def read_rows(cfg: DictConfig, feature_names: list[str]) -> tuple[pd.DataFrame, str]:
    """The rows to predict, from ``input`` or ``+features``, and how to name them."""
    if cfg.get("features") is None:
        return read_table(cfg.input), f"Input file {cfg.input}"
    values = cfg.features
    if isinstance(values, str) or not isinstance(values, Sequence):
        values = [values]
    if len(values) != len(feature_names):
        raise UserInputError(
            f"features= has {len(values)} values, but the model takes {len(feature_names)}: "
            f"{', '.join(feature_names)} (in this order)."
        )
    return pd.DataFrame([list(values)], columns=feature_names), "features=[...]"


def restore(cfg: DictConfig) -> tuple[Any, LightningModule]:
    """The data module (a regression module with the checkpoint's scaling: nothing is
    fitted and no training data are read), and the model with its weights."""
    run = TrainingRun.of(cfg, "predict with")
    datamodule = run.datamodule()
    if isinstance(datamodule, RegressionDataModule):
        run.load_datamodule_state(datamodule)
    return datamodule, run.model(datamodule)


def progress_bar(cfg: DictConfig) -> list[Any]:
    """This template's bar (src/callbacks/progress_bar.py), not Lightning's default: a
    prediction of one batch showed ``0.00it/s``. None where the trainer shows no bar."""
    if cfg.trainer.get("enable_progress_bar", True) is False:
        return []
    from src.callbacks.progress_bar import RichProgressBar

    return [RichProgressBar()]


def write_table(table: pd.DataFrame, output: Path, overwrite: bool) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(output, index=False, mode="w" if overwrite else "x")


@task_wrapper
def predict(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Predict the rows of ``cfg.input`` (or ``cfg.features``). Returns (metrics: none,
    objects), the rows with their predictions as ``objects["predictions"]``."""
    no_input = cfg.get("input") in (None, "")  # make predict without INPUT= passes input=
    if no_input == (cfg.get("features") is None):
        raise UserInputError(
            "Give what to predict: input=<table> or +features=[...] for a regression run; "
            "input=<.npy/.csv arrays, image folder or files, VIMH file> for the others "
            "(make predict RUN=<run> INPUT=<file or folder>)."
        )
    output = None if no_input else output_path(cfg)
    datamodule, model = restore(cfg)
    if not isinstance(datamodule, RegressionDataModule):
        if output is None:
            raise UserInputError(
                "+features=[...] is for regression runs: give input=<file or folder>."
            )
        if isinstance(datamodule, AudioFolderDataModule):
            task = predict_audio
        elif isinstance(model, MultiheadModule):
            task = predict_heads
        else:
            task = predict_classes
        table, summary = task(cfg, datamodule, model)
        write_table(table, output, bool(cfg.get("overwrite")))
        print(f"{summary}\nWrote {len(table)} rows to {output}")
        return {}, {"cfg": cfg, "datamodule": datamodule, "model": model, "predictions": table}

    names = datamodule.spec["target_names"]
    rows, source = read_rows(cfg, datamodule.scaling["feature_names"])
    clashes = [PREFIX + name for name in names if PREFIX + name in rows.columns]
    if clashes:
        raise UserInputError(f"{source} already has the column(s) {clashes}: rename them.")
    x = datamodule.rows_to_inputs(rows, source)
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False, callbacks=progress_bar(cfg))
    batches = trainer.predict(model, dataloaders=tensor_loader((x,), datamodule.batch_size))
    predictions = torch.cat(batches).double().numpy()
    for i, name in enumerate(names):
        rows[PREFIX + name] = predictions[:, i]

    if output is None:
        print(", ".join(f"{PREFIX}{name}={predictions[0, i]:.6g}" for i, name in enumerate(names)))
    else:
        write_table(rows, output, bool(cfg.get("overwrite")))
        print(f"Wrote {len(rows)} rows with predictions ({PREFIX}...) to {output}")
    objects = {"cfg": cfg, "datamodule": datamodule, "model": model, "trainer": trainer}
    return {}, {**objects, "predictions": rows}


@entry_point("predict.yaml")
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    main()
