"""Per-class precision, recall and F1 (and their macro means) of every classification head
on the test split, logged and written as a report in the run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning import Callback, LightningModule, Trainer
from torchmetrics.classification import (
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
    MulticlassStatScores,
)

from src.data.components.class_labels import class_labels

METRICS = {"precision": MulticlassPrecision, "recall": MulticlassRecall, "f1": MulticlassF1Score}


class ClassificationReport(Callback):
    """Counts each head's test predictions (torchmetrics, per class), then logs
    ``test/[<head>/]{precision,recall,f1}_macro`` (over the classes the test split has or
    the model predicted) and writes
    ``<dirpath>/classification_report.json`` and ``.txt`` (one row per class, named as
    the data module names them: ``class_labels``, folder names, a VIMH head's
    parameter values, else the class index). A module without
    classification heads (regression) produces nothing. It costs one update of three
    metrics per test batch.

    Args:
        dirpath: where the report goes (the run directory).
    """

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self.metrics: dict[str, dict[str, Any]] = {}

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.metrics = {}

    def on_test_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        if not hasattr(pl_module, "class_predictions") or not isinstance(outputs, dict):
            return
        heads = pl_module.class_predictions(outputs["outputs"], outputs["targets"])
        for head, (predicted, true, num_classes) in heads.items():
            if head not in self.metrics:
                self.metrics[head] = {
                    name: kind(num_classes, average="none").to(predicted.device)
                    for name, kind in METRICS.items()
                }
                # true positives, false positives, ..., support per class (synced under DDP)
                self.metrics[head]["stats"] = MulticlassStatScores(num_classes, average="none")
                self.metrics[head]["stats"].to(predicted.device)
            for metric in self.metrics[head].values():
                metric.update(predicted, true)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.metrics:
            return
        report: dict[str, Any] = {}
        for head, metrics in self.metrics.items():
            values = {name: metrics[name].compute().cpu() for name in METRICS}
            tp, fp, _, fn, support = metrics["stats"].compute().cpu().unbind(-1)
            labels = class_labels(trainer.datamodule, head, len(values["f1"]))
            # the macro means are over the classes the test split has or the model predicted,
            # as torchmetrics' and scikit-learn's: a class absent from both has no precision or
            # recall to speak of, and counting it as 0 pulled the mean down (a VIMH head of
            # 256 byte classes on 60 test notes: at most 60 classes could score)
            seen = (tp + fp + fn) > 0
            macro = {name: v[seen].mean() for name, v in values.items()}
            prefix = f"test/{head}/" if head else "test/"
            for name, mean in macro.items():
                pl_module.log(f"{prefix}{name}_macro", mean, sync_dist=True)
            report[head or "classes"] = {
                "per_class": {
                    label: {
                        **{name: float(v[i]) for name, v in values.items()},
                        "support": int(support[i]),
                    }
                    for i, label in enumerate(labels)
                },
                "macro": {
                    **{name: float(v) for name, v in macro.items()},
                    "support": int(support.sum()),
                    "classes": int(seen.sum()),
                },
            }
        if trainer.is_global_zero:
            self.write(report)

    def write(self, report: dict[str, Any]) -> None:
        from src.utils.atomic import write_json, write_text

        self.dirpath.mkdir(parents=True, exist_ok=True)
        write_json(self.dirpath / "classification_report.json", report)
        lines = []
        for head, part in report.items():
            lines.append(
                f"{head}\n{'class':>16} {'precision':>10} {'recall':>10} {'f1':>10} {'support':>8}"
            )
            rows = [*part["per_class"].items(), ("macro", part["macro"])]
            for label, v in rows:
                lines.append(
                    f"{label:>16} {v['precision']:>10.4f} {v['recall']:>10.4f} {v['f1']:>10.4f} "
                    f"{v['support']:>8}"
                )
            scored, classes = part["macro"]["classes"], len(part["per_class"])
            if scored < classes:
                lines.append(
                    f"(macro: the mean over the {scored} of {classes} classes that the test "
                    "split has or the model predicted)"
                )
            lines.append("")
        write_text(self.dirpath / "classification_report.txt", "\n".join(lines))
