"""A saved run config is code: only known-safe ``_target_``s may be instantiated from it.

``eval.py run_dir=<dir>`` (and predict, export, merge-lora, fuse) rebuild the
model and data from ``<dir>/.hydra/config.yaml``. Hydra instantiates whatever
callable a ``_target_`` names, so a run directory received from someone else
could run ``torch.load(..., weights_only=False)`` on a pickle, or anything else.
``check_run_targets`` allows the targets a run of this template uses:

- the project's own run components (``src.data``, ``src.models``, ``src.callbacks``,
  ``src.vimh``, the LoRA net and callback, the logger factories),
- ``torch``, ``torchvision``, ``torchmetrics``, ``lightning`` (and
  ``pytorch_lightning``), ``peft``, and Optuna's samplers and pruners,

and within those refuses any target with a private part (``_load``), or a
function or module whose name loads, saves, compiles or runs code (``torch.load``, ``torch.hub``,
``torch.jit``, ``torch.save``, ``src.utils.atomic.write_bytes`` ...). A refused
target is one message naming it and the file. ``trust_run_dir=true`` on the
command line skips the check for a directory you trust (your own runs).

An allowed target can still start a training run: the LoRA net trains its base on first
use (``src/train.py`` with the config's ``base_overrides``, a child process this check
never sees). ``forbid_training`` switches that off in a checked config, so a missing base
is an error there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, open_dict

from src.utils.errors import UserInputError

ALLOWED_PREFIXES = (
    # the packages a run's components live in; not src.reports, src.tools or the rest of
    # src.utils, whose functions start child runs of src/train.py (study_report.train_with
    # ran a planted config's overrides in a child this check never saw) or rewrite folders
    "src.data.",
    "src.models.",
    "src.callbacks.",
    "src.vimh.",
    "src.lora.net.",
    "src.lora.callback.",
    "src.utils.loggers.",
    "src.utils.optional_loggers.",
    "src.utils.ddp_launcher.",  # trainer=ddp_sim's strategy: its ranks re-run this command
    "torch.",
    "torchvision.",
    "torchmetrics.",
    "lightning.",
    "pytorch_lightning.",
    "peft.",
    "optuna.samplers.",
    "optuna.pruners.",
)
# targets that start a training run when what they need is missing, and their argument
# that allows it: set to false in a saved run config that is not trusted
TRAINS_ON_FIRST_USE = {"src.lora.net.LoRANet": "train_missing_base"}
# words (of snake_case and CamelCase parts) of names that load, save, compile or run code
DENIED_WORDS = frozenset(
    "load save write file hub jit package cpp extension serialization compile fx subprocess "
    "system exec eval remove delete unlink rmtree download open pickle marshal import "
    "library ops classes multiprocessing distributed "
    # torch.utils.collect_env.run runs a shell command; LightningCLI imports any class_path;
    # extract_archive writes anywhere; onnx export writes; from_pretrained and load_url fetch
    "env popen shell spawn command cmd cli extract archive export pretrained url".split()
)


def _words(part: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", part)}


def targets_in(node: Any, where: str = "") -> list[tuple[str, str]]:
    """``(key path, target)`` of every ``_target_`` in a config, at any depth. Values are
    read raw (an interpolated target stays ``${...}`` and is refused); nothing is resolved."""
    found: list[tuple[str, str]] = []
    if isinstance(node, DictConfig):
        for key in node.keys():
            child = node._get_node(key)
            path = f"{where}.{key}" if where else str(key)
            if key == "_target_":
                found.append((where or "<root>", str(child._value())))
            else:
                found += targets_in(child, path)
    elif isinstance(node, ListConfig):
        for index in range(len(node)):
            found += targets_in(node._get_node(index), f"{where}[{index}]")
    return found


def refused(target: str) -> str | None:
    """Why ``target`` may not be instantiated from a saved run config (None: allowed)."""
    if not target.startswith(ALLOWED_PREFIXES):
        return "it is outside the allowed packages (" + ", ".join(ALLOWED_PREFIXES) + ")"
    parts = target.split(".")
    for part in parts:
        if part.startswith("_"):
            return f"'{part}' is private"
    # a class (CamelCase last part) only builds an object: its module is what is checked
    checked = parts[:-1] if parts[-1][:1].isupper() else parts
    for part in checked:
        if _words(part) & DENIED_WORDS:
            return f"'{part}' loads, saves or runs code"
    return None


def check_run_targets(cfg: DictConfig, source: str | Path, trust: bool = False) -> None:
    """Stop unless every ``_target_`` of the saved run config ``cfg`` is allowed."""
    if trust:
        return
    for where, target in targets_in(cfg):
        why = refused(target)
        if why:
            raise UserInputError(
                f"{source} asks to instantiate {target} (at {where}), which a saved run config "
                f"may not: {why}. A run directory is code; if you trust this one (your own run), "
                "add trust_run_dir=true to the command."
            )


def forbid_training(node: Any) -> None:
    """Set every ``TRAINS_ON_FIRST_USE`` target of a config, at any depth, not to train."""
    if isinstance(node, DictConfig):
        target = node._get_node("_target_") if "_target_" in node else None
        switch = TRAINS_ON_FIRST_USE.get(str(target._value())) if target is not None else None
        if switch:
            with open_dict(node):
                node[switch] = False
        for key in node.keys():
            forbid_training(node._get_node(key))
    elif isinstance(node, ListConfig):
        for index in range(len(node)):
            forbid_training(node._get_node(index))
