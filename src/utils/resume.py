"""``ckpt_path=last``: the newest ``last.ckpt`` that this run can resume.

Every run gets a new directory, so Lightning's own ``ckpt_path="last"`` (the
last checkpoint of *this* run's checkpoint directory) finds nothing and trains
from scratch without a word. Here ``last`` means the newest
``<log_dir>/<task_name>/**/checkpoints/last.ckpt`` whose run made the same choices as
this one in the config groups that shape the model and the data: ``experiment``,
``model``, ``data`` and their subgroups (``model/optimizer``, ``data/transforms``, ...),
read from the run's ``.hydra/hydra.yaml``. Newer runs passed over are named in the log
with what differed; when no run fits, the run stops with the nearest candidates and
what differed in each.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from src.utils.errors import UserInputError
from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__)

# config groups whose choices must match for a run to be resumed (and their subgroups)
MATCHED_GROUPS = ("experiment", "model", "data")
# candidates named in the log or in the error, at most
NAMED = 3


def matched(choices: dict[str, Any]) -> dict[str, str | None]:
    """The choices of ``MATCHED_GROUPS`` and their subgroups, as plain strings."""
    return {
        str(group): None if choice is None else str(choice)
        for group, choice in choices.items()
        if str(group) in MATCHED_GROUPS
        or str(group).startswith(tuple(f"{g}/" for g in MATCHED_GROUPS))
    }


def current_choices() -> dict[str, str | None]:
    """This run's choices in the matched groups (none outside a Hydra app)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    return matched(dict(HydraConfig.get().runtime.choices))


def run_choices(run_dir: Path) -> dict[str, str | None] | None:
    """The matched choices a run was started with (its ``.hydra/hydra.yaml``), or None
    when that file is missing or unreadable."""
    try:
        saved = yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text()) or {}
        choices = saved["hydra"]["runtime"]["choices"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    return matched(choices) if isinstance(choices, dict) else None


def describe(choices: dict[str, str | None]) -> str:
    return " ".join(f"{group}={choice or 'none'}" for group, choice in sorted(choices.items()))


@dataclass
class Candidate:
    last: Path
    mtime: float
    choices: dict[str, str | None] | None  # None: not recorded
    wanted: dict[str, str | None]  # this run's

    @property
    def differing(self) -> list[str]:
        """The groups whose choice differs from this run's (empty: this run can resume it)."""
        if self.choices is None:
            return ["?"]
        found, wanted = self.choices, self.wanted
        return [g for g in sorted(set(wanted) | set(found)) if wanted.get(g) != found.get(g)]

    def says(self) -> str:
        """The run and what differs, in the user's words."""
        run = self.last.parent.parent
        if self.choices is None:
            return f"{run} (its .hydra/hydra.yaml, which records its choices, is unreadable)"
        its = describe({g: self.choices.get(g) for g in self.differing})
        here = describe({g: self.wanted.get(g) for g in self.differing})
        return f"{run} (its {its}; this run's {here})"


def resolve_last(cfg: Any) -> str:
    """The path ``ckpt_path=last`` stands for (see the module docstring), said in the log."""
    task_dir = Path(cfg.paths.log_dir) / str(cfg.task_name)
    wanted = current_choices()
    own = Path(cfg.paths.output_dir).resolve()
    found = [
        last
        for last in (task_dir.rglob("checkpoints/last.ckpt") if task_dir.is_dir() else [])
        if last.parent.parent.resolve() != own
    ]
    which = f"task '{cfg.task_name}'"
    if not found:
        raise UserInputError(
            f"ckpt_path=last: no run of {which} under {task_dir} has a checkpoints/last.ckpt, "
            "so there is nothing to resume. Give the checkpoint itself "
            "(ckpt_path=<run>/checkpoints/last.ckpt), or drop ckpt_path to train from scratch."
        )
    candidates = sorted(
        (
            Candidate(last, last.stat().st_mtime, run_choices(last.parent.parent), wanted)
            for last in found
        ),
        key=lambda candidate: -candidate.mtime,
    )
    fitting = next((i for i, c in enumerate(candidates) if not c.differing), None)
    if fitting is None:  # the fewest differences first, then the newest
        nearest = sorted(candidates, key=lambda c: (len(c.differing), -c.mtime))[:NAMED]
        raise UserInputError(
            f"ckpt_path=last: none of the {len(candidates)} runs of {which} under {task_dir} "
            f"with a checkpoints/last.ckpt was started with this run's choices "
            f"({describe(wanted) or 'none'}), so none can be resumed by it. The nearest: "
            f"{', '.join(c.says() for c in nearest)}. Resume one with its own settings "
            "(the same experiment=, model=, data= as that run), give the checkpoint itself "
            "(ckpt_path=<run>/checkpoints/last.ckpt), or drop ckpt_path to train from scratch."
        )
    newest = candidates[fitting]
    skipped = candidates[:fitting]
    if skipped:
        named = ", ".join(c.says() for c in skipped[:NAMED])
        more = f", and {len(skipped) - NAMED} more" if len(skipped) > NAMED else ""
        log.warning(
            f"ckpt_path=last: passed over {len(skipped)} newer run(s) started with other "
            f"choices, which this run cannot resume: {named}{more}"
        )
    log.info(
        f"ckpt_path=last: resuming {newest.last} (the newest last.ckpt of {which} with "
        f"{describe(wanted) or 'the same choices'})"
    )
    return str(newest.last)
