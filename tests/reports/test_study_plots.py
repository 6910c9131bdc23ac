"""The study report's plots, as a person reads them: on a study made in memory (no sweep)."""

from __future__ import annotations

import re
import warnings

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial
from plotly.colors import hex_to_rgb

from src.reports.study_plots import plots

SPACE = {
    "model.optimizer.lr": FloatDistribution(1e-4, 1e-1, log=True),
    "model.net.lin1_size": IntDistribution(16, 256),
    "model.net.lin2_size": IntDistribution(16, 256),
    "model/optimizer": CategoricalDistribution(["adam", "sgd"]),
}


@pytest.fixture
def study() -> optuna.Study:
    """Eight trials whose val/acc_best goes from 0.1 to 0.94, each with its epochs."""
    study = optuna.create_study(study_name="s", direction="maximize")
    for i in range(8):
        value = 0.1 + 0.12 * i
        params = {
            "model.optimizer.lr": 10 ** (-4 + 3 * ((i * 5) % 8) / 7),
            "model.net.lin1_size": 16 + 30 * ((i * 3) % 8),
            "model.net.lin2_size": 16 + 30 * ((i * 7) % 8),
            "model/optimizer": ["adam", "sgd"][i % 2],
        }
        steps = {epoch: value * (epoch + 1) / 3 for epoch in range(3)}
        study.add_trial(
            create_trial(
                params=params, distributions=SPACE, value=value, intermediate_values=steps,
                state=TrialState.COMPLETE,
            )
        )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["val/acc_best"])
    return study


def rgb(colour: str) -> tuple[int, ...]:
    return tuple(int(float(c)) for c in re.findall(r"[\d.]+", colour)[:3])


def test_every_trial_is_a_line_seen_on_the_white_page(study: optuna.Study) -> None:
    """Optuna's parallel-coordinate scale runs from white: the worst trial (or the best,
    minimizing) was a white line on the white page."""
    figure = plots(study, ["val/acc_best"], seed=0, ranked=False)["parallel_coordinate"]
    lines = [t for t in figure.data if t.mode == "lines" and t.customdata is not None]
    assert len(lines) == 8
    for line in lines:
        assert min(rgb(line.line.color)) < 200 or sum(rgb(line.line.color)) < 600, line


def test_a_contour_matrix_has_room_for_its_axis_titles(study: optuna.Study) -> None:
    """Optuna's matrix fills the window: 7 parameters' titles overlapped at 1200x900."""
    figure = plots(study, ["val/acc_best"], seed=0, ranked=False)["contour"]
    panels = len(SPACE)
    assert figure.layout.width >= 200 * panels and figure.layout.height >= 200 * panels


def test_epochs_are_whole_numbers(study: optuna.Study) -> None:
    """3 epochs had plotly's ticks 0, 0.5, 1, 1.5, 2: half an epoch is no point a trial reports."""
    figure = plots(study, ["val/acc_best"], seed=0, ranked=False)["intermediate_values"]
    assert figure.layout.xaxis.title.text == "epoch"
    assert figure.layout.xaxis.dtick == 1 and figure.layout.xaxis.tick0 == 0


def test_each_trials_epochs_are_named_in_a_legend(study: optuna.Study) -> None:
    """Optuna hides the intermediate values' legend: a line per trial, in plotly's ten
    colours over again, and no way to tell which trial a line is (or that it was pruned)
    but hovering over it."""
    pruned = create_trial(
        params=study.trials[0].params, distributions=SPACE, intermediate_values={0: 0.05},
        state=TrialState.PRUNED,
    )  # fmt: skip
    study.add_trial(pruned)
    figure = plots(study, ["val/acc_best"], seed=0, ranked=False)["intermediate_values"]
    assert figure.layout.showlegend is True
    names = [t.name for t in figure.data]
    assert names == [f"trial {i}" for i in range(8)] + ["trial 8 (pruned)"], names


def test_trials_are_whole_numbers(study: optuna.Study) -> None:
    """4 trials had plotly's ticks 0, 0.5, 1, ..., 3 on the optimization history: there is
    no trial 0.5."""
    figure = plots(study, ["val/acc_best"], seed=0, ranked=False)["optimization_history"]
    assert figure.layout.xaxis.title.text == "Trial"
    assert figure.layout.xaxis.dtick == 1 and figure.layout.xaxis.tick0 == 0


def test_slice_shows_choices_as_written_and_every_trial_on_the_page(study: optuna.Study) -> None:
    """Optuna's slice plot wrote a categorical parameter's choices as Python reprs ('adam',
    'sgd', quotes and all) and coloured the trials on a scale from white: trial 0 was a white
    dot on the pale panel."""
    figure = plots(study, ["val/acc_best"], seed=0, ranked=False)["slice"]
    shown = {str(x) for t in figure.data if t.type == "scatter" and t.x is not None for x in t.x}
    assert {"adam", "sgd"} <= shown and not any("'" in x for x in shown), shown
    axes = [figure.layout[k] for k in figure.layout if k.startswith("xaxis")]
    orders = [list(a.categoryarray) for a in axes if a.categoryarray is not None]
    assert ["adam", "sgd"] in orders, orders
    for trace in figure.data:
        if trace.type == "scatter" and trace.marker.colorscale:
            # the scale's lightest colour is still seen on plotly's pale grey panel
            for _, colour in trace.marker.colorscale:
                assert sum(hex_to_rgb(colour) if colour.startswith("#") else rgb(colour)) < 600


def test_a_parameter_of_one_value_is_no_contour_and_no_warning(study: optuna.Study) -> None:
    """Four trials that all chose adamw: Optuna's contour matrix warned "Param
    model/optimizer unique value length is less than 2." twelve times (once per pair it
    is in, each way) and drew those panels empty. That parameter has no contour."""
    import logging

    one = optuna.create_study(study_name="s", direction="maximize")
    for trial in study.trials[::2]:  # adam only
        one.add_trial(trial)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("optuna").addHandler(handler)
    try:
        figure = plots(one, ["val/acc_best"], seed=0, ranked=False)["contour"]
    finally:
        logging.getLogger("optuna").removeHandler(handler)
    assert [r.getMessage() for r in records if r.levelno >= logging.WARNING] == []
    titles = {figure.layout[k].title.text for k in figure.layout if k.startswith("xaxis")}
    titles.discard(None)  # the panels inside the matrix carry no title
    assert titles == {"model.optimizer.lr", "model.net.lin1_size", "model.net.lin2_size"}


def test_log_axes_read_in_powers_of_ten(study: optuna.Study) -> None:
    """Plotly labels a log axis with SI prefixes: a learning rate or weight decay of 1e-4
    read "100µ" on the slice and contour plots."""
    figures = plots(study, ["val/acc_best"], seed=0, ranked=False)
    for name in ("slice", "contour"):
        layout = figures[name].layout
        axes = [layout[k] for k in layout if re.fullmatch(r"[xy]axis\d*", k)]
        logs = [axis for axis in axes if axis.type == "log"]
        assert logs, name  # model.optimizer.lr is searched on a log scale
        assert all(axis.exponentformat == "power" for axis in logs), name


def test_the_pareto_front_shows_every_trial_on_the_page() -> None:
    """Optuna colours the Pareto front's trials by number on scales from white (reds on
    the front, blues behind it): trial 0 was a white dot on the pale panel."""
    pareto = optuna.create_study(study_name="p", directions=["maximize", "minimize"])
    x = FloatDistribution(0, 1)
    for i, values in enumerate([(0.5, 10.0), (0.9, 20.0), (0.4, 30.0), (0.95, 40.0), (0.3, 5.0)]):
        pareto.add_trial(create_trial(params={"x": i / 5}, distributions={"x": x}, values=values))
    figure = plots(pareto, ["val/acc_best", "model/params/total"], seed=0, ranked=False)[
        "pareto_front"
    ]
    scales = [t.marker.colorscale for t in figure.data if t.type == "scatter"]
    assert len(scales) == 2 and scales[0] != scales[1]  # the front and the rest apart
    for scale in scales:
        assert scale[0][0] == 0 and scale[-1][0] == 1
        for _, colour in scale:  # the lightest is still seen on plotly's pale grey panel
            assert sum(rgb(colour)) < 600, scale
