"""The composed config as a rich tree, and the tags prompt."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import rich
import rich.console
import rich.syntax
import rich.tree
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.prompt import Prompt

from src.utils.atomic import write_text
from src.utils.errors import UserInputError, user_errors_unwrapped
from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__)

FIRST_FIELDS = ("data", "model", "callbacks", "logger", "trainer", "paths", "extras")
TREE_INDENT = 8  # the columns rich's guides take before a config line: "│   └── " once per level


def plain_text(renderable: Any, width: int = 80) -> str:
    """What rich prints, without colour, ``width`` columns wide: a wide enough width cuts
    nothing (rich crops a line at the console's width, 80 for a file or a pipe); the padding
    rich adds to fill each line is stripped."""
    buffer = io.StringIO()
    rich.console.Console(file=buffer, width=width).print(renderable)
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())


def save_rich(path: Path, renderable: Any, width: int = 80) -> None:
    """Write ``plain_text(renderable, width)`` atomically (``src.utils.atomic``): an
    interrupted or full-disk write leaves the previous file, never half of one."""
    write_text(path, plain_text(renderable, width))


@rank_zero_only
def print_config_tree(
    cfg: DictConfig,
    print_order: Sequence[str] = FIRST_FIELDS,
    resolve: bool = False,
    save_to_file: bool = False,
    to_console: bool = True,
) -> None:
    """Print the config as a tree (main groups first) and optionally save it to the run dir
    (``to_console=False``: only save it)."""
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    queue = [field for field in print_order if field in cfg]
    queue += [field for field in cfg if field not in queue]
    width = 80
    for field in queue:
        branch = tree.add(field, style="dim", guide_style="dim")
        value = cfg[field]
        if isinstance(value, DictConfig):
            with user_errors_unwrapped():  # ${data_spec:...} builds the data module here
                text = OmegaConf.to_yaml(value, resolve=resolve)
        else:
            text = str(value)
        branch.add(rich.syntax.Syntax(text, "yaml"))
        width = max([width, *(len(line) + TREE_INDENT for line in text.splitlines())])
    if to_console and rich.get_console().is_terminal:
        rich.print(tree)  # the terminal's width: a long line is cut, the tree stays readable
    elif to_console:  # a pipe or a log file: every line whole, as in the saved copy
        print(plain_text(tree, width), end="")
    if save_to_file:
        save_rich(Path(cfg.paths.output_dir, "config_tree.log"), tree, width)


@rank_zero_only
def enforce_tags(cfg: DictConfig, save_to_file: bool = False) -> None:
    """Ask for tags when none are given (interactive sessions; multirun needs them set)."""
    if not cfg.get("tags"):
        if "id" in HydraConfig().cfg.hydra.job:
            raise UserInputError("A multirun needs tags: add tags=[...] to the command.")
        log.warning("No tags provided in config. Prompting user to input tags...")
        tags = Prompt.ask("Enter a list of comma separated tags", default="dev")
        with open_dict(cfg):
            cfg.tags = [t.strip() for t in tags.split(",") if t.strip()]
        log.info(f"Tags: {cfg.tags}")
    if save_to_file:
        save_rich(Path(cfg.paths.output_dir, "tags.log"), cfg.tags)
