"""LHT's logger options whose packages this project does not install: aim, comet, neptune.

``logger=aim`` and ``logger=comet`` work once their package is installed; until
then the run stops at once with one message saying how to install it (instead
of an import traceback from inside Hydra). ``logger=neptune`` is LHT's name for
a service that has shut down (Lightning's ``NeptuneLogger`` only raises now):
it stops with a message naming the loggers that work.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from src.utils.errors import UserInputError

# logger option -> (module to import, class, package to install)
OPTIONAL = {
    "aim": ("aim.pytorch_lightning", "AimLogger", "aim"),
    "comet": ("lightning.pytorch.loggers", "CometLogger", "comet-ml"),
}
# the import name of each package above, to look for it without importing it
IMPORT_NAMES = {"aim": "aim", "comet-ml": "comet_ml"}


def optional_logger(kind: str, **kwargs: Any) -> Any:
    """The ``kind`` logger built with ``kwargs``, or one message if it cannot be."""
    if kind == "neptune":
        raise UserInputError(
            "logger=neptune: Neptune has shut down and Lightning no longer supports its "
            "logger. Use logger=mlflow, logger=wandb, logger=tensorboard or logger=csv."
        )
    if kind not in OPTIONAL:
        raise UserInputError(f"Unknown optional logger {kind!r}: one of {sorted(OPTIONAL)}.")
    module, cls, package = OPTIONAL[kind]
    if importlib.util.find_spec(IMPORT_NAMES[package]) is None:
        raise UserInputError(
            f"logger={kind} needs the {package} package, which is not installed. Install it "
            f"into the project's environment (uv add {package}, or uv pip install {package}) "
            "and run again, or choose another logger (logger=csv, tensorboard, mlflow, wandb)."
        )
    return getattr(importlib.import_module(module), cls)(**kwargs)
