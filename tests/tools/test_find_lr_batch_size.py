"""The learning-rate and batch-size finders write their findings and say what to use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from src.tools.find_lr_batch_size import lr_figure, search, suggest_lr, unsmooth
from src.train import train
from tests.conftest import compose_config


def test_lr_finder_writes_plot_json_and_override(tmp_path: Path, capsys) -> None:
    cfg = compose_config("lr_find.yaml", ["lr_find.num_training=60"], tmp_path)
    metrics, _ = search(cfg)
    report = json.loads((tmp_path / "lr_find.json").read_text())
    assert len(report["loss"]) == 60 and report["suggestion"] == metrics["found"]
    # the printed advice is the steepest descent of the JSON's own smoothed curve vs log10(lr)
    expected, _ = suggest_lr(report["lr"], report["loss"])
    assert report["suggestion"] == pytest.approx(expected)
    assert 1e-6 <= report["suggestion"] <= 1.0
    with Image.open(tmp_path / "lr_find.png") as plot:
        assert plot.size[0] > 300
    printed = capsys.readouterr().out
    assert f"model.optimizer.lr={report['suggestion']:.3g}" in printed
    assert f"Plot: {tmp_path / 'lr_find.png'}" in printed
    # the plot's title names what was searched (it read "LR range test" alone)
    assert report["searched"] == "model=mlp data=digits, batch size 32"
    # the smoothed curve follows the losses, not some steps behind them (a running mean's
    # lags: Lightning's, beta 0.98, by the 20 steps this looks at and more)
    assert abs(shift(report["smoothed"], report["loss"])) <= 1


def test_the_range_test_runs_its_steps_whatever_the_epoch_limit(tmp_path: Path) -> None:
    """trainer.max_epochs=1 on the digits (45 batches of 32) stopped the range at its 45th
    step, and the suggestion came from that stub of the curve."""
    overrides = ["trainer.max_epochs=1", "lr_find.num_training=80", "lr_find.max_lr=0.01"]
    search(compose_config("lr_find.yaml", overrides, tmp_path))
    report = json.loads((tmp_path / "lr_find.json").read_text())
    assert len(report["lr"]) == 80 and report["lr"][-1] == pytest.approx(0.01, rel=0.01)


def test_the_plot_shows_every_step_of_the_descent_and_its_legend_off_the_curves(
    tmp_path: Path,
) -> None:
    """The diabetes regression's losses are noisy: the y axis (0.9x the smoothed minimum to
    1.5x its start) cut off the lowest steps and the noise above the start, and the legend,
    inside the axes, lay over the losses."""
    cfg = compose_config(
        "lr_find.yaml", ["experiment=diabetes_mlp", "extras.print_config=false"], tmp_path
    )
    search(cfg)
    report = json.loads((tmp_path / "lr_find.json").read_text())
    raw = np.asarray(report["loss"], dtype=float)
    curve = np.asarray(report["smoothed"], dtype=float)
    figure = lr_figure(report["lr"], raw, curve, report["suggestion"], 0.5)
    (ax,) = figure.axes
    bottom, top = ax.get_ylim()
    descent = raw[: int(np.nanargmin(curve)) + 1]
    assert bottom <= np.nanmin(raw) and top >= np.nanmax(descent), (bottom, top)
    figure.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert not legend.overlaps(ax.get_window_extent())


def test_lr_finder_with_the_same_seed_finds_the_same_curve(tmp_path: Path) -> None:
    """The search is seeded as a training run is: two searches with one seed give the
    same losses and suggestion, another seed other losses."""
    reports = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        cfg = compose_config("lr_find.yaml", ["lr_find.num_training=30", f"seed={seed}"],
                             tmp_path / name)  # fmt: skip
        search(cfg)
        reports.append(json.loads((tmp_path / name / "lr_find.json").read_text()))
    assert reports[0]["loss"] == reports[1]["loss"]
    assert reports[0]["suggestion"] == reports[1]["suggestion"]
    assert reports[0]["loss"] != reports[2]["loss"]


def shift(curve: list[float], raw: list[float], most: int = 20) -> int:
    """The steps ``curve`` lies behind ``raw`` (negative: ahead): the shift that brings it
    closest to them, in the mean squared difference over the finite points."""
    curve, raw = np.asarray(curve), np.asarray(raw)
    n = len(raw)

    def distance(s: int) -> float:
        a, b = (curve[s:], raw[: n - s]) if s >= 0 else (curve[:s], raw[-s:])
        both = np.isfinite(a) & np.isfinite(b)
        return float(np.mean((a[both] - b[both]) ** 2))

    return min(range(-most, most + 1), key=distance)


def test_lr_finder_explains_a_missing_suggestion(tmp_path: Path, capsys) -> None:
    cfg = compose_config("lr_find.yaml", ["lr_find.num_training=5"], tmp_path)
    metrics, _ = search(cfg)
    report = json.loads((tmp_path / "lr_find.json").read_text())
    assert report["suggestion"] is None and "found" not in metrics
    assert (
        "too few" in report["why_none"] and "No learning rate suggested" in capsys.readouterr().out
    )


def test_batch_size_finder_stops_at_the_training_set(tmp_path: Path, capsys, caplog) -> None:
    """On the digits every size fits: the tool says the split, not memory, ended the
    search, and Lightning's "will continue with full run using batch size 2048" (a size
    past the split, and no run follows) is not printed beside it."""
    cfg = compose_config("lr_find.yaml", ["find=batch_size"], tmp_path)
    assert cfg.task_name == "batch_size_find"  # its own logs/ folder, not lr_find's
    metrics, objects = search(cfg)
    found = json.loads((tmp_path / "batch_size_find.json").read_text())["batch_size"]
    assert found == metrics["found"] == 1077  # digits' training split: nothing larger helps
    out = capsys.readouterr().out
    assert "whole training split (1077 samples)" in out and "data.batch_size=1077" in out
    assert not [r for r in caplog.records if "continue with full run" in r.getMessage()]


def descent_curve(x: np.ndarray, centre: float) -> np.ndarray:
    """A loss that falls from 3 to 1 around log10(lr) = centre, steepest exactly there."""
    return 2 - np.tanh((x - centre) / 0.4)


def test_suggestion_is_the_steepest_descent_against_log_lr() -> None:
    x = np.linspace(-6, 0, 301)
    lrs, losses = 10**x, descent_curve(x, -2.5)
    lr, _ = suggest_lr(lrs, losses, window=0.0, skip_begin=0)
    assert abs(np.log10(lr) - (-2.5)) < 0.03
    # noisy steps, smoothed: still within a quarter decade
    noisy = losses + np.random.default_rng(0).normal(0, 0.05, len(x))
    lr, curve = suggest_lr(lrs, noisy)
    assert abs(np.log10(lr) - (-2.5)) < 0.25 and np.nanstd(curve - losses) < 0.1
    # what Lightning's suggestion() computes on the same curve (gradient against linear lr,
    # whose steps are tiny at small lr, so the noise there wins) is decades off
    linear = lrs[10:][np.argmin(np.gradient(curve[10:], lrs[10:]))]
    assert np.log10(linear) < -4.5


def test_the_smoothing_does_not_move_the_descent() -> None:
    """The range test's 100 steps over 6 decades, a clean descent steepest at 3e-3: the
    smoothed curve is steepest where the losses are. A running mean (Lightning's beta 0.98)
    put the suggestion 0.52 decades late, at 1e-2, past the descent's middle."""
    x = np.linspace(-6, 0, 100)
    losses = descent_curve(x, -2.5)
    lr, curve = suggest_lr(10**x, losses)
    assert abs(np.log10(lr) - (-2.5)) < 0.05, lr
    inside = slice(10, 90)  # away from the ends, where the window shrinks
    assert np.argmin(np.gradient(curve[inside], x[inside])) == np.argmin(
        np.gradient(losses[inside], x[inside])
    )


def test_batch_noise_is_not_a_descent() -> None:
    # flat until lr 1e-3, then a fall of 0.3 to lr 1 under batch noise of sd 0.2 (diabetes_mlp's
    # range test looks like this): the slope between neighbouring steps found its "steepest
    # descent" in the noise near 5e-6 in 19 of these 20 curves; fitted over a decade, the
    # suggestion lies in the real descent
    x = np.linspace(-6, 0, 100)
    found = []
    for seed in range(20):
        noise = np.random.default_rng(seed).normal(0, 0.2, len(x))
        found.append(suggest_lr(10**x, 1.0 - 0.1 * np.clip(x + 3, 0, None) + noise)[0])
    assert sum(lr > 1e-3 for lr in found) >= 15, found


def test_divergence_threshold_cuts_the_curve() -> None:
    x = np.linspace(-6, 0, 301)
    losses = descent_curve(x, -4.0)
    losses[x > -2.0] = (
        20.0 - 18 * (np.tanh((x[x > -2.0] + 1.0) / 0.1) + 1) / 2
    )  # spike, then a steep fall
    cut, _ = suggest_lr(10**x, losses, window=0.0, diverge_threshold=4.0)
    assert abs(np.log10(cut) - (-4.0)) < 0.05
    uncut, _ = suggest_lr(10**x, losses, window=0.0, diverge_threshold=None)
    assert abs(np.log10(uncut) - (-1.0)) < 0.05


def test_unsmooth_inverts_lightnings_running_mean() -> None:
    raw = np.random.default_rng(1).uniform(0.5, 2.0, 50)
    avg, recorded = 0.0, []
    for step, loss in enumerate(raw, start=1):  # Lightning's _LRCallback, step = global_step
        avg = 0.98 * avg + 0.02 * loss
        recorded.append(avg / (1 - 0.98 ** (step + 1)))
    assert np.allclose(unsmooth(recorded, 0.98), raw)


@pytest.mark.slow
def test_three_epochs_at_the_suggestion_beat_three_at_a_hundredth(tmp_path: Path) -> None:
    cfg = compose_config("lr_find.yaml", ["experiment=digits_mlp"], tmp_path / "find")
    metrics, _ = search(cfg)
    lr = metrics["found"]
    results = {}
    for name, value in (("suggested", lr), ("hundredth", lr / 100)):
        run = compose_config(
            "train.yaml",
            ["experiment=digits_mlp", "trainer.max_epochs=3", f"model.optimizer.lr={value}"],
            tmp_path / name,
        )
        results[name] = float(train(run)[0]["val/acc_best"])
    assert results["suggested"] > results["hundredth"] + 0.05, (lr, results)


@pytest.mark.slow
def test_the_suggestion_trains_a_noisy_regression(tmp_path: Path) -> None:
    # diabetes_mlp's range test is mostly batch noise (442 rows, batches of 32): the
    # point-to-point slope suggested 4.6e-6, where 20 epochs reach val/r2 0.05
    cfg = compose_config("lr_find.yaml", ["experiment=diabetes_mlp"], tmp_path / "find")
    lr = search(cfg)[0]["found"]
    run = compose_config(
        "train.yaml",
        ["experiment=diabetes_mlp", "trainer.max_epochs=10", f"model.optimizer.lr={lr}"],
        tmp_path / "train",
    )
    assert float(train(run)[0]["val/r2_best"]) > 0.4, lr
