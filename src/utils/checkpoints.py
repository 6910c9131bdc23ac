"""Checks on checkpoints and training runs, made before any work starts.

Lightning reports a wrong checkpoint as a long traceback deep inside
``load_state_dict``. These checks say the same thing in one line: what is
wrong with which file, and what to do.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from src.utils.errors import UserInputError
from src.utils.trusted_targets import check_run_targets, forbid_training

# ckpt_path values that Lightning resolves itself
LIGHTNING_CKPT_KEYWORDS = {"last", "best", "hpc", "registry"}
# the averaged weights of a callbacks=swa run (src/callbacks/weight_averaging.py): the model the
# run produced, so what train.py tests and eval.py run_dir= picks instead of the best epoch
AVERAGE_CHECKPOINT = "swa.ckpt"
# a key of a callback's checkpoint state: the (0-based) epochs the fit loop counted that
# trained nothing, as SWA's BatchNorm pass (src/callbacks/weight_averaging.py); not counted
# as trained epochs when a resume is checked
UNTRAINED_EPOCHS = "untrained_epochs"


def why_unreadable(error: Exception) -> str:
    """A short reason a weights-only ``torch.load`` failed, in our words: torch's own
    message advises ``weights_only=False``, which runs any code the file holds."""
    text = str(error)
    if isinstance(error, pickle.UnpicklingError) or "weights_only" in text:
        found = re.search(r"(?:GLOBAL|global) ([\w.]+)", text)
        what = f" (it names {found.group(1)})" if found else ""
        return (
            f"it holds pickled Python objects{what} or is not a torch file at all; only "
            "tensors and plain data load here, safely"
        )
    first = text.splitlines()[0] if text else "no detail"
    # torch's zip reader appends advice that the caller's message gives in one line
    first = first.split(" This is an internal miniz error.")[0].rstrip(" .")
    return f"{type(error).__name__}: {first}"


def load_weights_only(path: Path, what: str) -> Any:
    """``torch.load(path, weights_only=True)``, or one message saying why it cannot be."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise UserInputError(
            f"{what} {path} cannot be read: {why_unreadable(error)}. It is corrupt, "
            "truncated, or not a file of this template."
        ) from None


def check_checkpoint_file(path: str | Path) -> None:
    """Stop unless ``path`` is a file (or one of Lightning's checkpoint keywords): called
    before the data and model are built, so a mistyped path costs no set-up."""
    if str(path) in LIGHTNING_CKPT_KEYWORDS:
        return
    path = Path(path)
    if not path.is_file():
        hint = " (it is a directory: pass run_dir=... to eval.py)" if path.is_dir() else ""
        raise UserInputError(
            f"Checkpoint {path} does not exist{hint}. Pass the path of a .ckpt file, "
            f"for example logs/train/runs/<run>/checkpoints/last.ckpt."
        )


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a Lightning checkpoint safely (``weights_only=True``) or say why it cannot be."""
    path = Path(path)
    check_checkpoint_file(path)
    checkpoint = load_weights_only(path, "Checkpoint")
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserInputError(
            f"Checkpoint {path} holds no 'state_dict': it is not a Lightning checkpoint."
        )
    return checkpoint


def describe_mismatch(saved: dict[str, Any], expected: dict[str, Any]) -> str:
    """What differs between two state dicts' names and shapes ("" when nothing does)."""
    missing = [k for k in expected if k not in saved]
    unexpected = [k for k in saved if k not in expected]
    reshaped = [
        f"{k} {tuple(saved[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in saved and hasattr(saved[k], "shape") and saved[k].shape != v.shape
    ]
    details = []
    if reshaped:
        details.append(f"shapes differ (checkpoint vs model): {'; '.join(reshaped[:3])}")
    if missing:
        details.append(f"missing from checkpoint: {', '.join(missing[:3])}")
    if unexpected:
        details.append(f"not in the model: {', '.join(unexpected[:3])}")
    more = (
        len(missing)
        + len(unexpected)
        + len(reshaped)
        - sum(min(3, len(x)) for x in (missing, unexpected, reshaped))
    )
    return f"{'; '.join(details)}{f'; and {more} more' if more > 0 else ''}"


def check_checkpoint_fits(
    path: str | Path, model: nn.Module, run_dir: str | Path | None = None
) -> dict[str, Any] | None:
    """Stop unless the checkpoint's weights have the names and shapes of ``model``'s
    (``model`` built from the saved config of ``run_dir``, when given). Returns the
    checkpoint read (None for Lightning's keywords), for further checks."""
    if str(path) in LIGHTNING_CKPT_KEYWORDS:
        return None
    checkpoint = read_checkpoint(path)
    mismatch = describe_mismatch(checkpoint["state_dict"], model.state_dict())
    if mismatch and run_dir is not None:  # run_dir= already rebuilt the run's own model
        raise UserInputError(
            f"Checkpoint {path} was saved from another architecture than the model of run "
            f"{run_dir} ({mismatch}): that run did not write it. Pass the directory of the "
            "run that did as run_dir=, or ckpt_path= alone with that run's model and data."
        )
    if mismatch:
        raise UserInputError(
            f"Checkpoint {path} was saved from another architecture than the configured "
            f"model ({mismatch}). Use the model and data settings of the run that wrote it "
            "(eval.py run_dir=<run> does this for you)."
        )
    return checkpoint


def check_training_left(path: str | Path, checkpoint: dict[str, Any], trainer: DictConfig) -> None:
    """Stop when resuming ``path`` (read as ``checkpoint``) would train nothing: it already
    holds ``trainer.max_epochs`` epochs (or ``max_steps`` steps). Lightning would return at
    once and the run would end on a missing validation metric instead of saying why. The
    epochs said are training epochs: those a callback records as ``UNTRAINED_EPOCHS`` (SWA's
    BatchNorm pass, which Lightning counts as one more epoch) are not among them."""
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {})
    epochs = progress.get("current", {}).get("processed")  # epochs whose training ended
    if epochs is not None:  # less the epochs a callback ran that trained nothing
        untrained = {
            epoch
            for state in checkpoint.get("callbacks", {}).values()
            if isinstance(state, dict)
            for epoch in state.get(UNTRAINED_EPOCHS, ())
        }
        epochs -= sum(1 for epoch in untrained if epoch < epochs)
    max_epochs, max_steps = trainer.get("max_epochs"), trainer.get("max_steps")
    steps = checkpoint.get("global_step")
    if epochs is not None and max_epochs is not None and 0 <= max_epochs <= epochs:
        done, key, limit = f"{epochs} epochs", "trainer.max_epochs", max_epochs
        more = f"trainer.max_epochs={epochs + 10}"
    elif steps is not None and max_steps is not None and 0 <= max_steps <= steps:
        done, key, limit = f"{steps} steps", "trainer.max_steps", max_steps
        more = f"trainer.max_steps={2 * steps}"
    else:
        return
    run = Path(path).parent.parent
    test = f"run_dir={run}" if (run / ".hydra").is_dir() else f"ckpt_path={path} <its data, model>"
    raise UserInputError(
        f"Checkpoint {path} has already trained {done} and {key}={limit}: resuming it "
        f"would train nothing. To train on, raise the limit ({more}); to test it: "
        f"python src/eval.py {test}."
    )


def run_config(run_dir: str | Path, trust: bool = False) -> DictConfig:
    """The composed config a run saved in ``<run_dir>/.hydra/config.yaml``, after checking
    that it instantiates only allowed targets (``src.utils.trusted_targets``) and starts
    no training run, unless ``trust`` (``trust_run_dir=true``)."""
    saved = Path(run_dir) / ".hydra" / "config.yaml"
    if not Path(run_dir).is_dir():
        raise UserInputError(
            f"run_dir={run_dir} does not exist. Pass the directory of a training run "
            "(logs/train/runs/<timestamp>), or use ckpt_path=..."
        )
    if not saved.is_file():
        raise UserInputError(
            f"run_dir={run_dir} has no saved config ({saved} is missing). Pass the "
            "directory of a training run (logs/train/runs/<timestamp>), or use ckpt_path=..."
        )
    try:
        cfg = OmegaConf.load(saved)
    except Exception as error:
        raise UserInputError(f"{saved} is not a readable config: {error}") from None
    if not isinstance(cfg, DictConfig):
        raise UserInputError(f"{saved} is not a config mapping.")
    check_run_targets(cfg, saved, trust=trust)
    if not trust:
        forbid_training(cfg)  # a missing LoRA base is an error, not a child training run
    return cfg


def tested_checkpoint(ckpt_dir: str | Path | None, best: str | None) -> str | None:
    """The checkpoint a finished fit is tested on: the weight average when the run made one
    (``AVERAGE_CHECKPOINT``), else ``best`` (its ModelCheckpoint's best)."""
    average = Path(ckpt_dir) / AVERAGE_CHECKPOINT if ckpt_dir else None
    return str(average) if average is not None and average.is_file() else best


def best_checkpoint(run_dir: str | Path) -> Path:
    """The checkpoint a training run was tested on: its weight average (callbacks=swa), or
    the best checkpoint, as its ModelCheckpoint recorded it."""
    ckpt_dir = Path(run_dir) / "checkpoints"
    if (ckpt_dir / AVERAGE_CHECKPOINT).is_file():
        return ckpt_dir / AVERAGE_CHECKPOINT
    last = ckpt_dir / "last.ckpt"
    if last.is_file():
        for key, state in read_checkpoint(last).get("callbacks", {}).items():
            if str(key).startswith("ModelCheckpoint") and state.get("best_model_path"):
                best = ckpt_dir / Path(state["best_model_path"]).name
                if best.is_file():
                    return best
    candidates = sorted(ckpt_dir.glob("epoch_*.ckpt"))
    if len(candidates) == 1:
        return candidates[0]
    if last.is_file():
        return last
    raise UserInputError(
        f"Run {run_dir} has no checkpoint in {ckpt_dir}/. Was it trained with "
        "callbacks=none or stopped before the first epoch ended?"
    )
