"""The plots, importances and index page of a study report (``src/reports/study_report.py``).

Every plot is one offline HTML file (``plotly.min.js`` once beside them);
``index.html`` links them and lists each trial with its state, values, run
directory and MLflow run id (the user attributes the sweeper and its jobs record).
"""

from __future__ import annotations

import html
import math
import re
import warnings
from pathlib import Path
from typing import Any

from src.utils.multirun_summary import pruned_after

IMPORTANCE = "fANOVA (variance explained, random forest)"


def slug(name: str) -> str:
    return re.sub(r"[^\w\-]+", "_", name).strip("_") or "study"


def targets(names: list[str]) -> list[tuple[str, Any, str]]:
    """(objective name, Optuna ``target`` function or None, plot file suffix) per objective."""
    if len(names) == 1:
        return [(names[0], None, "")]
    return [(n, (lambda t, i=i: t.values[i]), f"_{slug(n)}") for i, n in enumerate(names)]


def importances(study: Any, names: list[str], seed: int) -> dict[str, Any]:
    """Each objective's parameter importances (None with fewer than 2 complete trials)."""
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances
    from optuna.trial import TrialState

    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) < 2:
        return dict.fromkeys(names)
    return {
        name: {
            param: float(share)
            for param, share in get_param_importances(
                study, evaluator=FanovaImportanceEvaluator(seed=seed), target=target
            ).items()
        }
        for name, target, _ in targets(names)
    }


CONTOUR_CELL = 230  # pixels per parameter of a contour matrix


def sized_contour(figure: Any, searched: set[str]) -> Any:
    """A matrix of contours (3 parameters or more) sized by its parameters: Optuna leaves
    the size to the window, where 7 parameters' 49 panels overlapped their axis titles."""
    if len(searched) > 2:
        side = CONTOUR_CELL * len(searched)
        figure.update_layout(width=side + 250, height=side + 150)
    return figure


def readable_slice(figure: Any, colorscale: str = "Viridis") -> Any:
    """Optuna's slice plot with a categorical parameter's choices as written (``adam``):
    Optuna labels them with their Python repr (``'adam'``, quotes and all). Its trials are
    coloured by number on a scale that starts at white (trial 0 was a white dot on the
    pale panel): here on ``colorscale``, whose light end is still seen."""

    def plain(label: Any) -> Any:
        text = str(label)
        quoted = len(text) > 1 and text[0] == text[-1] and text[0] in "'\""
        return text[1:-1] if quoted else label

    unquoted: set[str] = set()  # the axes whose labels lose their quotes (1 and '1' stay apart)
    for key in figure.layout:
        axis = figure.layout[key] if key.startswith("xaxis") else None
        if axis is not None and axis.categoryarray is not None:
            labels = [plain(label) for label in axis.categoryarray]
            if len(set(map(str, labels))) == len(labels):
                axis.categoryarray = labels
                unquoted.add(key)
    for trace in figure.data:
        if trace.type != "scatter":
            continue
        if trace.x is not None and ("xaxis" + (trace.xaxis or "x")[1:]) in unquoted:
            trace.x = [plain(x) for x in trace.x]
        if trace.marker.colorscale:
            trace.marker.colorscale = colorscale
    return figure


def seen_pareto_front(figure: Any, start: float = 0.5) -> Any:
    """Optuna's Pareto front with its colour scales (trial number: reds on the front, blues
    behind it) cut at ``start``: both ran from white, and trial 0 was a white dot on the
    pale panel. The rest of each scale is stretched over the trials; the hues stay apart."""
    for trace in figure.data:
        scale = trace.marker.colorscale if trace.type == "scatter" else None
        if scale:
            kept = [(at, colour) for at, colour in scale if at >= start]
            first = kept[0][0]  # a plotly scale runs from 0 to 1
            trace.marker.colorscale = [((at - first) / (1 - first), c) for at, c in kept]
    return figure


def plots(study: Any, names: list[str], seed: int, ranked: bool) -> dict[str, Any]:
    """The plotly figures of the report, by file name (without ``.html``); ``ranked``:
    importances can be computed (2 complete trials or more)."""
    from optuna import visualization as vis
    from optuna.exceptions import ExperimentalWarning
    from optuna.importance import FanovaImportanceEvaluator

    from src.utils.runs import recolour_parallel_coordinate

    warnings.filterwarnings("ignore", category=ExperimentalWarning)  # plot_pareto_front's
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    searched = {param for trial in complete for param in trial.params}
    # a parameter every complete trial gave one value has no contour: Optuna drew its
    # panels empty and warned once per pair it is in, each way (12 lines for one of 7)
    varied = sorted(p for p in searched if len({repr(t.params.get(p)) for t in complete}) > 1)
    figures = {}
    if len(names) > 1 and len(names) <= 3:
        figures["pareto_front"] = seen_pareto_front(
            vis.plot_pareto_front(study, target_names=names)
        )
    # whole trials only (plotly's own ticks for 4 trials were 0, 0.5, 1, ..., 3)
    last_trial = max((t.number for t in study.get_trials(deepcopy=False)), default=0)
    for name, target, suffix in targets(names):
        on = {"target": target, "target_name": name}
        history = vis.plot_optimization_history(study, **on)
        history.update_xaxes(tick0=0, dtick=max(1, math.ceil(last_trial / 10)))
        figures[f"optimization_history{suffix}"] = history
        if ranked:
            evaluator = FanovaImportanceEvaluator(seed=seed)
            figures[f"param_importances{suffix}"] = vis.plot_param_importances(
                study, evaluator=evaluator, **on
            )
        figures[f"slice{suffix}"] = readable_slice(vis.plot_slice(study, **on))
        # Optuna's scale starts at white: the trial at that end was a white line on white
        figures[f"parallel_coordinate{suffix}"] = recolour_parallel_coordinate(
            vis.plot_parallel_coordinate(study, **on)
        )
        if len(varied) > 1:  # a contour per pair of parameters
            contour = vis.plot_contour(study, params=varied, **on)
            figures[f"contour{suffix}"] = sized_contour(contour, set(varied))
    if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        # what the jobs report (src/callbacks/optuna_trial.py): the first optimized metric
        # after each validation epoch; Optuna's axes say "Step" and "Intermediate Value"
        figure = vis.plot_intermediate_values(study)
        figure.update_layout(xaxis_title="epoch", yaxis_title=f"{names[0]} after the epoch")
        # whole epochs only (plotly's own ticks for 3 epochs were 0, 0.5, 1, 1.5, 2)
        last = max((max(t.intermediate_values, default=0) for t in study.trials), default=0)
        figure.update_xaxes(tick0=0, dtick=max(1, math.ceil(last / 10)))
        # Optuna hides the legend: a line per trial in plotly's ten colours over again, told
        # apart only by hovering; name each line's trial, and say which were pruned
        pruned = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))}
        for trace in figure.data:
            number = re.fullmatch(r"Trial(\d+)", trace.name or "")
            if number:
                n = int(number.group(1))
                trace.name = f"trial {n}" + (" (pruned)" if n in pruned else "")
        figure.update_layout(showlegend=True)
        figures["intermediate_values"] = figure
    for name, figure in figures.items():
        figure.update_layout(title=f"{study.study_name}: {figure.layout.title.text or name}")
        # log axes (lr, weight decay) in powers of ten: plotly's SI prefixes read "100µ"
        figure.update_xaxes(exponentformat="power", selector={"type": "log"})
        figure.update_yaxes(exponentformat="power", selector={"type": "log"})
    return figures


def write_plots(study: Any, out: Path, names: list[str], seed: int, ranked: bool) -> list[str]:
    """The HTML plots (``plots``), one file each; their file names."""
    figures = plots(study, names, seed, ranked)
    for name, figure in figures.items():
        figure.write_html(out / f"{name}.html", include_plotlyjs="directory")
    return [f"{name}.html" for name in figures]


def trial_runs(study: Any) -> dict[str, dict[str, Any]]:
    """Every trial's state, values and where its run is, by trial number."""
    runs = {}
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        runs[str(trial.number)] = {
            "state": trial.state.name.lower(),
            "values": trial.values,
            "run_dir": attrs.get("run_dir"),
            "mlflow_run_id": attrs.get("mlflow_run_id"),
            "pruned_at_epoch": attrs.get("pruned_at_epoch"),
            "fail_reason": attrs.get("fail_reason") or attrs.get("not_run"),
        }
    return runs


def write_index(out: Path, report: dict[str, Any]) -> None:
    """``index.html``: the study in a few lines, links to every plot, one row per trial."""
    esc = html.escape
    best = {b["number"] for b in report["best"]}
    chosen = {report["chosen"]["number"]} if report.get("chosen") else set()
    rows = []
    for number, run in report["runs"].items():
        values = ", ".join(f"{v:.6g}" for v in run["values"] or [])
        where = run["run_dir"] or ""
        link = f'<a href="{esc(Path(where).resolve().as_uri())}">{esc(where)}</a>' if where else ""
        note = run["fail_reason"] or (
            pruned_after(run["pruned_at_epoch"]) if run["pruned_at_epoch"] is not None else ""
        )
        marks = [m for m, n in (("best", best), ("chosen", chosen)) if int(number) in n]
        mark = "".join(f" <b>{m}</b>" for m in marks)
        rows.append(
            f"<tr><td>{number}{mark}</td><td>{esc(run['state'])}</td><td>{values}</td>"
            f"<td>{link}</td><td>{esc(run['mlflow_run_id'] or '')}</td><td>{esc(note)}</td></tr>"
        )
    plots = "".join(f'<li><a href="{esc(p)}">{esc(p[:-5])}</a></li>' for p in report["plots"])
    commands = "".join(f"<pre>{esc(b['command'])}</pre>" for b in report["best"])
    picked = ""
    if chosen:
        (number,) = chosen
        picked = (
            f"<h2>Chosen: trial {number}</h2><pre>{esc(report['chosen']['command'])}</pre>"
            f'<p><a href="trial{number}.txt">trial{number}.txt</a></p>'
        )
    states = ", ".join(f"{n} {s}" for s, n in sorted(report["trials"].items()))
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{esc(report["study"])}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 8px;text-align:left}}
tr:nth-child(even){{background:#f3f3f3}}pre{{white-space:pre-wrap}}</style></head><body>
<h1>Optuna study {esc(report["study"])}</h1>
<p>{esc(report["storage"])}: {esc(states)}; objectives {esc(", ".join(report["objectives"]))}
({esc(", ".join(report["directions"]))}); importances: {esc(report["importance"])}.</p>
<h2>Best</h2>{commands}<p><a href="overrides.txt">overrides.txt</a>, experiment/,
<a href="report.json">report.json</a></p>{picked}
<h2>Plots</h2><ul>{plots}</ul>
<h2>Trials</h2><table><tr><th>trial</th><th>state</th><th>values</th><th>run directory</th>
<th>MLflow run</th><th>note</th></tr>{"".join(rows)}</table>
</body></html>
"""
    (out / "index.html").write_text(page)
