"""Find a learning rate (or a batch size) for any experiment, before training.

``python src/tools/find_lr_batch_size.py experiment=...`` runs Lightning's learning-rate range
test: training steps with an exponentially growing learning rate, the loss
recorded at each. The suggestion is our own (``suggest_lr``): the steepest descent of the
smoothed loss against log10(lr), fitted over a decade. The smoothing is a centred mean
(``smooth``): Lightning's running mean lags the losses it smooths, so its curve, and the
steepest point on it, lie to the right of the losses' own (half a decade on a clean
descent with the default 100 steps). It writes the loss-against-lr
plot (``lr_find.png``) and a JSON with the suggestion (``lr_find.json``) into the run
directory, and prints
the override to use. ``find=batch_size`` doubles the batch size until a step
fails (out of memory) or the search ends, and prints that override instead.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import rootutils
from omegaconf import DictConfig

rootutils.setup_root(__file__, indicator=".project-root", pythonpath=True)

from src.utils.entry_point import entry_point  # noqa: E402
from src.utils.errors import UserInputError  # noqa: E402
from src.utils.instantiators import instantiate_run  # noqa: E402
from src.utils.run_status import task_wrapper  # noqa: E402

# the smoothing Lightning's range test applies to the losses it records (fixed in Lightning)
LIGHTNING_BETA = 0.98


def unsmooth(smoothed: list[float], beta: float) -> np.ndarray:
    """The per-step losses behind Lightning's recorded curve.

    Lightning records only its debiased running mean (``beta=0.98``, not a parameter of
    ``Tuner.lr_find``): ``avg_t = beta * avg_{t-1} + (1 - beta) * loss_t``, recorded as
    ``avg_t / (1 - beta ** (t + 1))`` after optimizer step t = 1, 2, ...; undo it, so the
    suggestion smooths the per-step losses without the running mean's lag (``smooth``)."""
    s = np.asarray(smoothed, dtype=float)
    steps = np.arange(1, len(s) + 1)
    avg = s * (1 - beta ** (steps + 1))
    previous = np.concatenate([[0.0], avg[:-1]])
    return (avg - beta * previous) / (1 - beta)


def smooth(x: np.ndarray, losses: np.ndarray, window: float) -> np.ndarray:
    """Centred mean of the losses over ``window`` decades of lr (``x`` is log10(lr)): each
    point is the mean of the points within ``window / 2`` decades of it, as many on each
    side (fewer near the ends), so the curve is not shifted along the lr axis, as a running
    mean's is; ``window=0``: the losses themselves. A non-finite loss is left out of its
    neighbours' means and recorded as NaN."""
    x, losses = np.asarray(x, dtype=float), np.asarray(losses, dtype=float)
    finite = np.isfinite(losses)
    out = np.full(len(losses), np.nan)
    half = window / 2 + 1e-9
    for i in np.nonzero(finite)[0]:
        left = int(np.count_nonzero(x[:i] >= x[i] - half))
        right = int(np.count_nonzero(x[i + 1 :] <= x[i] + half))
        reach = min(left, right)
        near = slice(i - reach, i + reach + 1)
        out[i] = losses[near][finite[near]].mean()
    return out


def suggest_lr(
    lrs: Any,
    losses: Any,
    window: float = 0.5,
    diverge_threshold: float | None = 4.0,
    skip_begin: int = 10,
    skip_end: int = 1,
    span: float = 1.0,
) -> tuple[float | None, np.ndarray]:
    """The learning rate where the smoothed loss (``smooth`` over ``window`` decades) falls
    fastest against log10(lr).

    The range test spaces the lrs exponentially, so the gradient against linear lr (what
    Lightning's ``suggestion()`` takes) is dominated by the spacing and lands far to the left;
    against log10(lr) it finds the middle of the descent. The slope at a point is the
    least-squares slope of the curve over ``span`` decades centred on it (only points whose
    whole window is on the curve): neighbouring steps are hundredths of a decade apart, and
    a slope between them measures one batch's loss against the next (on a noisy curve, a
    "descent" at 5e-6 that trains nothing). The curve is cut where the smoothed loss first
    exceeds ``diverge_threshold`` times its best so far. Returns the suggestion (None when
    no window of ``span`` decades with 3 usable points fits) and the smoothed curve."""
    x = np.log10(np.asarray(lrs, dtype=float))
    curve = smooth(x, np.asarray(losses, dtype=float), window)
    end = len(curve)
    if diverge_threshold is not None:
        best = np.fmin.accumulate(np.where(np.isfinite(curve), curve, np.inf))
        over = np.nonzero(curve[1:] > diverge_threshold * best[:-1])[0]
        end = int(over[0]) + 1 if len(over) else end
    keep = np.arange(skip_begin, max(skip_begin, end - skip_end))
    keep = keep[np.isfinite(curve[keep])]
    if len(keep) < 3:
        return None, curve
    low, high = x[keep[0]] + span / 2, x[keep[-1]] - span / 2
    slopes = {}
    for i in keep[(x[keep] >= low - 1e-9) & (x[keep] <= high + 1e-9)]:
        window = keep[np.abs(x[keep] - x[i]) <= span / 2 + 1e-9]
        if len(window) >= 3:
            slopes[int(i)] = np.polyfit(x[window], curve[window], 1)[0]
    if not slopes:
        return None, curve
    return float(np.asarray(lrs, dtype=float)[min(slopes, key=slopes.get)]), curve


def searched(objects: dict[str, Any]) -> str:
    """What the range test ran on, for the plot's title (``LR range test`` alone named
    neither): the experiment, or the model and data choices, and the batch size."""
    from hydra.core.hydra_config import HydraConfig

    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    if choices.get("experiment"):
        what = f"experiment={choices['experiment']}"
    else:
        model = choices.get("model") or type(objects["model"]).__name__
        data = choices.get("data") or type(objects["datamodule"]).__name__
        what = f"model={model} data={data}"
    batch_size = getattr(objects["datamodule"], "batch_size", None)
    return what + (f", batch size {batch_size}" if batch_size else "")


def lr_figure(
    lrs: Any,
    raw: np.ndarray,
    curve: np.ndarray,
    lr: float | None,
    window: float,
    title: str = "LR range test",
) -> Any:
    """The loss against the learning rate: each step's loss, the smoothed curve and the
    suggestion. The y axis holds every step's loss but those above the descent (the
    divergence after the smoothed minimum would squash the rest); the legend is below the
    axes, off the curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(lrs, raw, color="0.75", lw=1, label="loss per step")
    ax.plot(lrs, curve, color="C0", label=f"smoothed: centred mean, {window:g} decades wide")
    if lr is not None:
        ax.axvline(lr, color="C3", ls="--", label=f"steepest descent: {lr:.3g}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss", title=title)
    raw, curve = np.asarray(raw, dtype=float), np.asarray(curve, dtype=float)
    if np.isfinite(curve).any():
        # from below every step's loss; from above the losses up to the smoothed minimum,
        # the noisy descent, not the divergence after it (the limits were 0.9x the smoothed
        # minimum, which cut off the lowest steps, and 1.5x its start, the noise above it)
        descent = slice(0, int(np.nanargmin(curve)) + 1)
        below = np.concatenate([raw, curve])
        above = np.concatenate([raw[descent], curve[descent]])
        low, high = float(np.nanmin(below)), float(np.nanmax(above))
        margin = 0.05 * (high - low) or 0.05 * abs(high) or 0.05
        ax.set_ylim(low - margin, high + margin)
    # below the axes: inside them (matplotlib's "best" place) it covered the noisy losses
    ax.legend(loc="upper left", bbox_to_anchor=(0, -0.15), fontsize=8)
    return fig


def plot_lr_curve(
    lrs: Any,
    raw: np.ndarray,
    curve: np.ndarray,
    lr: float | None,
    window: float,
    path: Path,
    title: str,
) -> None:
    import matplotlib.pyplot as plt

    fig = lr_figure(lrs, raw, curve, lr, window, title)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def find_lr(cfg: DictConfig, objects: dict[str, Any], out: Path) -> dict[str, Any]:
    from lightning.pytorch.tuner import Tuner

    finder = Tuner(objects["trainer"]).lr_find(
        objects["model"], datamodule=objects["datamodule"], update_attr=False, **cfg.lr_find
    )
    lrs = [float(v) for v in finder.results["lr"]]
    raw = unsmooth(finder.results["loss"], LIGHTNING_BETA)
    suggestion, curve = suggest_lr(
        lrs, raw, diverge_threshold=cfg.lr_find.get("early_stop_threshold"), **cfg.lr_suggest
    )
    report: dict[str, Any] = {
        "searched": searched(objects),
        "lr": lrs,
        "loss": [float(v) for v in raw],
        "smoothed": [float(v) for v in curve],
        "suggestion": suggestion,
    }
    title = f"LR range test: {report['searched']}"
    plot_lr_curve(lrs, raw, curve, suggestion, cfg.lr_suggest.window, out / "lr_find.png", title)
    print(f"Plot: {out / 'lr_find.png'}")
    if suggestion is None:
        finite = int(np.isfinite(curve).sum())
        report["why_none"] = (
            f"the loss curve has {finite} finite points of {len(curve)}: too few, or too "
            f"short a range before it diverged, to measure the descent over "
            f"lr_suggest.span={cfg.lr_suggest.span} decades. Raise lr_find.num_training, or "
            "lower lr_find.max_lr if the loss diverged early."
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
    # Lightning ends its search with "will continue with full run using batch size N", a
    # size past the training split when it ran out of samples, not of memory; this tool
    # runs nothing after it and prints the size to use itself
    tuner_log = logging.getLogger("lightning.pytorch.tuner.batch_size_scaling")
    level = tuner_log.level
    tuner_log.setLevel(logging.WARNING)
    try:
        size = Tuner(objects["trainer"]).scale_batch_size(
            objects["model"], datamodule=datamodule, **cfg.batch_size_find
        )
    finally:
        tuner_log.setLevel(level)
    # the search stops at the first size at or past the training set's size
    train_size = len(getattr(datamodule.train_dataloader(), "dataset", ()))
    if train_size and size >= train_size:
        print(
            f"Every batch size up to the whole training split ({train_size} samples) ran: "
            f"memory does not limit it here.\nLargest: data.batch_size={train_size} (one "
            "batch an epoch; a smaller one takes more optimizer steps an epoch)"
        )
        return {"batch_size": train_size, "whole_split": True}
    print(f"Largest batch size that ran: {size}\nUse: data.batch_size={size}")
    return {"batch_size": size, "whole_split": False}


@task_wrapper
def search(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    if cfg.find not in ("lr", "batch_size"):
        raise UserInputError(f"find={cfg.find} is not a search: use find=lr or find=batch_size.")
    if cfg.get("seed") is not None:  # as train.py: the same seed, the same curve and suggestion
        import lightning as L

        L.seed_everything(cfg.seed, workers=True)
    if cfg.find == "lr":
        from omegaconf import open_dict

        # the range test runs lr_find.num_training steps (Lightning sets max_steps), but an
        # epoch limit stopped it sooner: trainer.max_epochs=1 on the digits (45 batches of
        # 32) ended the range at 1e-4 and suggested 2.4e-05 from that stub
        with open_dict(cfg):
            cfg.trainer.max_epochs = -1
    objects = instantiate_run(cfg)
    out = Path(cfg.paths.output_dir)
    if cfg.find == "lr":
        report = find_lr(cfg, objects, out)
    else:
        report = find_batch_size(cfg, objects)
    (out / f"{cfg.find}_find.json").write_text(json.dumps(report, indent=2) + "\n")
    found = report.get("suggestion", report.get("batch_size"))
    return ({"found": found} if found is not None else {}), objects


@entry_point("lr_find.yaml")
def main(cfg: DictConfig) -> None:
    search(cfg)


if __name__ == "__main__":
    main()
