"""Predictions of classification and multihead (VIMH) runs as a table.

Classification: one row per input sample, ``input`` (file or row number), then
``top1_class, top1_probability, ..., top<k>_class, top<k>_probability``: the ``top_k``
most likely classes by name with their softmax probabilities (``top1_class`` is the
prediction; ``class_1`` read like a class's name, which the wine example's classes are).

Audio folders: the same table, for WAV files (a folder, a file or a list of them).

Multihead: one row per record of the VIMH file: ``input`` (record number), then
per head ``<head>`` (the value the file's label byte stands for, in parameter units),
``predicted_<head>`` (parameter units) and, for heads that predict classes,
``probability_<head>`` (of the predicted class; an ordinal head's probability is that
of its rounded expected class).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd
import torch

from src.data.components.class_labels import class_labels
from src.data.image_folder_datamodule import ImageFolderDataModule
from src.data.in_memory_datamodule import InMemoryDataModule
from src.models.components.head_kinds import class_values, kind_of
from src.models.components.head_specs import label_classes, label_values
from src.tools.predict_inputs import (
    audio_paths,
    image_paths,
    read_arrays,
    read_audio,
    read_images,
    read_vimh,
)
from src.utils.errors import UserInputError

CHUNK = 256  # samples per forward pass


def class_names(datamodule: Any, count: int) -> list[str]:
    """The data's class names (``class_labels``): a folder's sub-folder names, the digits
    kept, or 0..k-1."""
    return class_labels(datamodule, "", count)


@torch.inference_mode()
def forward_in_chunks(model: Any, *inputs: torch.Tensor) -> Any:
    """The model's outputs on all samples, CHUNK at a time (a tensor or a dict of them)."""
    model.eval()
    parts = [model(*(t[i : i + CHUNK] for t in inputs)) for i in range(0, len(inputs[0]), CHUNK)]
    if isinstance(parts[0], dict):
        return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}
    return torch.cat(parts)


def classification_inputs(cfg: Any, datamodule: Any) -> tuple[torch.Tensor, list[str]]:
    """The normalised inputs of ``cfg.input`` and the name of each sample."""
    if isinstance(datamodule, ImageFolderDataModule):
        paths = image_paths(cfg.input)
        return read_images(paths, datamodule), [str(p) for p in paths]
    if isinstance(datamodule, InMemoryDataModule):
        raw = read_arrays(cfg.input, datamodule.spec["input_shape"])
        datamodule.setup("fit")  # the training split's mean and std
        x = datamodule.from_raw(raw)
        x, _ = datamodule.normalise(x, torch.zeros(len(x)))
        return x, [str(i) for i in range(len(x))]
    raise UserInputError(
        f"predict.py reads arrays (in-memory data sets) and image files (image folders); "
        f"{type(datamodule).__name__} runs are not predicted here."
    )


def predict_classes(cfg: Any, datamodule: Any, model: Any) -> tuple[pd.DataFrame, str]:
    """The top-k table of a classification run, and a summary of it."""
    x, names_of_inputs = classification_inputs(cfg, datamodule)
    probabilities = forward_in_chunks(model, x).float().softmax(dim=1)
    return top_k_table(cfg, class_names(datamodule, probabilities.shape[1]), probabilities,
                       names_of_inputs)  # fmt: skip


def predict_audio(cfg: Any, datamodule: Any, model: Any) -> tuple[pd.DataFrame, str]:
    """The top-k table of an audio-folder run (a spectral net with one head, ``label``)
    on WAV files, and a summary of it."""
    paths = audio_paths(cfg.input)
    x, levels = read_audio(paths, datamodule)
    (head,) = model.heads
    probabilities = forward_in_chunks(model, x, levels)[head["name"]].float().softmax(dim=1)
    names = class_labels(datamodule, head["name"], probabilities.shape[1])
    return top_k_table(cfg, names, probabilities, [str(p) for p in paths])


def top_k_table(
    cfg: Any, names: list[str], probabilities: torch.Tensor, names_of_inputs: list[str]
) -> tuple[pd.DataFrame, str]:
    """One row per input: its ``top_k`` classes by name with their probabilities."""
    k = int(cfg.top_k)
    if not 1 <= k:
        raise UserInputError(f"top_k={cfg.top_k} must be at least 1.")
    k = min(k, len(names))
    top, classes = probabilities.topk(k, dim=1)
    table = pd.DataFrame({"input": names_of_inputs})
    for rank in range(k):
        table[f"top{rank + 1}_class"] = [names[c] for c in classes[:, rank].tolist()]
        table[f"top{rank + 1}_probability"] = top[:, rank].numpy()
    counts = Counter(table["top1_class"])
    spread = ", ".join(f"{name} ({counts[name]})" for name in names if counts[name])
    summary = (
        f"Predicted {len(table)} samples; predicted class (samples): {spread}; mean "
        f"probability of the predicted class {float(top[:, 0].mean()):.3f}"
    )
    return table, summary


def predict_heads(cfg: Any, datamodule: Any, model: Any) -> tuple[pd.DataFrame, str]:
    """Per-head values (parameter units) of a multihead run on a VIMH record file."""
    heads = model.heads
    data = read_vimh(cfg.input, datamodule, heads)
    outputs = forward_in_chunks(model, data["x"], data["levels"])
    table = pd.DataFrame({"input": range(len(data["x"]))})
    parts = []
    for i, head in enumerate(heads):
        name, kind, output = head["name"], kind_of(head), outputs[head["name"]].float()
        if kind.predicts_classes:
            truth = class_values(head, label_classes(data["labels"][:, i], head))
            predicted = kind.predicted_classes(head, output)
            chance = output.softmax(dim=1).gather(
                1, predicted.clamp(0, output.shape[1] - 1)[:, None]
            )
            table[name] = truth.numpy()
            table[f"predicted_{name}"] = class_values(head, predicted).numpy()
            table[f"probability_{name}"] = chance[:, 0].numpy()
            hit = (table[name] == table[f"predicted_{name}"]).mean()
            parts.append(f"{name} acc {hit:.3f}")
        else:
            table[name] = label_values(data["labels"][:, i], head).numpy()
            table[f"predicted_{name}"] = kind.predicted_values(head, output).numpy()
            error = (table[name] - table[f"predicted_{name}"]).abs().mean()
            parts.append(f"{name} MAE {error:.4g}")
    summary = f"Predicted {len(table)} records against the file's labels: {', '.join(parts)}"
    return table, summary
