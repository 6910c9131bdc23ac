"""``--help`` of every script: its own options, not every config group of the project.

Hydra's default help lists every group under ``configs/`` (a report's help showed
``data``, ``model``, ``trainer``...) and the whole composed config. Ours prints:

- the script's summary (the first paragraph of its module docstring);
- its own keys, as its root config file states them, comments included (and those of
  the root config it builds on, e.g. ``export.yaml`` on ``eval.yaml``);
- the config groups the composed config uses, each with its options.

``configs/hydra/default.yaml`` sets ``hydra.help.template: ${tool_help:}``. A root config
that composes another's groups only to read them names the groups it takes instead:
``study_report.yaml`` composes ``train.yaml`` for its ``hparams_search`` configs and sets
``${tool_help:hparams_search}``, so neither train's groups nor its keys are listed.

The resolver is registered when ``src`` is imported (``src/__init__.py``) and never
raises: a help text is not worth a traceback.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType
from typing import Any

from omegaconf import DictConfig, OmegaConf

RESOLVER = "tool_help"
CONFIGS = Path(__file__).resolve().parents[2] / "configs"

_summary: list[str] = [""]  # the running script's summary, set by entry_point


def describe(module: ModuleType | None) -> None:
    """Take the script's summary from its module docstring (first paragraph)."""
    doc = (getattr(module, "__doc__", None) or "").strip()
    _summary[0] = doc.split("\n\n", 1)[0].strip()


def own_text(config_name: str, with_parents: bool = True) -> list[str]:
    """The keys of ``configs/<config_name>`` with their comments: the file without its
    ``# @package`` line, ``defaults`` list and ``hydra`` node (and, with ``with_parents``,
    the same of each root config its defaults list builds on)."""
    path = CONFIGS / (config_name if config_name.endswith(".yaml") else f"{config_name}.yaml")
    if not path.is_file():
        return []
    kept, skipping = [], False
    for line in path.read_text().splitlines():
        if line.startswith("# @package"):
            continue
        if re.match(r"^(defaults|hydra):", line):
            skipping = True
            continue
        if skipping and (not line.strip() or line[:1] in " -\t"):
            continue
        skipping = False
        kept.append(line)
    text = ["\n".join(kept).strip("\n")]
    defaults = OmegaConf.load(path).get("defaults") or []
    parents = [d for d in defaults if isinstance(d, str) and d != "_self_"]
    for parent in parents if with_parents else []:
        text += [f"\n--- from {parent}.yaml ---", *own_text(parent)]
    return text


def group_lines(groups: list[str]) -> list[str]:
    try:
        from hydra.core.global_hydra import GlobalHydra

        loader = GlobalHydra.instance().config_loader()
    except Exception:  # outside Hydra's own app: no options to list
        return [f"{group}=..." for group in groups]
    lines = []
    for group in sorted(groups):
        options = sorted(loader.get_group_options(group))
        if options:
            lines.append(f"{group}: {', '.join(options)}")
    return lines


def render(groups: str = "", *, _root_: DictConfig) -> str:
    """The help text; ``groups`` (comma-separated) replaces the composed groups."""
    try:
        job: Any = _root_.hydra.job
        name, config_name = str(job.name), str(job.config_name).removesuffix(".yaml")
        if groups:
            listed, text = [g.strip() for g in groups.split(",")], own_text(config_name, False)
        else:
            choices = _root_.hydra.runtime.choices
            listed = [g for g in choices if not str(g).startswith("hydra")]
            text = own_text(config_name)
    except Exception as error:  # never a traceback for a help text
        return f"(no help: {type(error).__name__}: {error})"
    lines = [f"{name}: {_summary[0]}" if _summary[0] else name, ""]
    lines += [f"== Options (key=value), from configs/{config_name}.yaml ==", *text, ""]
    group_text = group_lines(listed)
    if group_text:
        lines += ["== Config groups (group=option) ==", *group_text, ""]
    lines.append("The composed config: --cfg job. Hydra's own flags: --hydra-help.")
    return "\n".join(lines).replace("$", "$$")  # Hydra fills the help in as a string.Template


def register() -> None:
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, render)
