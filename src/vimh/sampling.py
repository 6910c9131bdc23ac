"""How the varying parameters of a VIMH data set are chosen: random draws or a grid.

``random`` (the default) draws each parameter independently, uniformly over its
range or over its grid when it has a ``step``. ``grid`` (NSMT's AVIX mode) takes
every combination of the parameters' grid values exactly once, so ``size`` must
be their number; the combinations are then put in a seeded random order, since
the test split is the tail of the data set and an ordered grid would make it one
corner of the parameter space.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from src.utils.errors import UserInputError

SAMPLINGS = ("random", "grid")


def draw(spec: dict[str, float], size: int, rng: np.random.Generator) -> np.ndarray:
    """Values drawn uniformly over the range, or over its grid when it has a step."""
    if "step" in spec:
        steps = round((spec["max"] - spec["min"]) / spec["step"])
        return spec["min"] + spec["step"] * rng.integers(0, steps + 1, size)
    return rng.uniform(spec["min"], spec["max"], size)


def grid_values(name: str, spec: dict[str, float]) -> np.ndarray:
    if "step" not in spec:
        raise UserInputError(
            f"sampling=grid needs a step for every varying parameter; {name} has none "
            f"(give synth.parameters.{name}.step=..., or use sampling=random)."
        )
    steps = round((spec["max"] - spec["min"]) / spec["step"])
    return spec["min"] + spec["step"] * np.arange(steps + 1)


def grid_size(varying: dict[str, dict[str, float]]) -> int:
    return math.prod(len(grid_values(name, spec)) for name, spec in varying.items())


def check_sampling(sampling: str, varying: dict[str, dict[str, float]], size: int) -> None:
    if sampling not in SAMPLINGS:
        raise UserInputError(f"sampling={sampling!r} is not one of {SAMPLINGS}.")
    if sampling == "grid" and grid_size(varying) != size:
        raise UserInputError(
            f"sampling=grid takes every combination of {list(varying)} once: "
            f"{grid_size(varying)} samples. Set size={grid_size(varying)}, or change the steps."
        )


def choose(
    varying: dict[str, dict[str, float]], size: int, seed: int, sampling: str = "random"
) -> dict[str, np.ndarray]:
    """One value per sample for each varying parameter (checked by ``check_sampling``)."""
    rng = np.random.default_rng(seed)
    if sampling == "random":
        return {name: draw(spec, size, rng) for name, spec in varying.items()}
    axes = [grid_values(name, spec) for name, spec in varying.items()]
    combos = np.array(list(itertools.product(*axes)), dtype=np.float64)[rng.permutation(size)]
    return {name: combos[:, i] for i, name in enumerate(varying)}
