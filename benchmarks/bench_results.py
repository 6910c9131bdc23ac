"""Headline figures of a benchmark, for the one-screen table of ``make bench``.

Each benchmark prints its own report; it also calls ``record`` for the figures
the table shows. ``record`` appends one JSON line to the file named by
``$BENCH_RESULTS`` (set by ``benchmarks/suite.py``) and does nothing when the
variable is unset, so every benchmark still runs on its own.
"""

from __future__ import annotations

import json
import os

RESULTS = "BENCH_RESULTS"


def record(
    measure: str,
    value: float,
    unit: str,
    reference: str,
    target: str,
    met: bool | None,
) -> None:
    """One row: what was measured, its figure and unit (``x`` for a ratio), what it is
    measured against, the target in words and whether it is met (None: no target)."""
    path = os.environ.get(RESULTS)
    if not path:
        return
    row = {
        "measure": measure,
        "value": value,
        "unit": unit,
        "reference": reference,
        "target": target,
        "met": met,
    }
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")
