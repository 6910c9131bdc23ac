"""Command lines that mix argparse options with Hydra overrides: the scripts that run
several trainings (``src/tools/compare_head_losses.py``,
``benchmarks/compare_architectures.py``)."""

from __future__ import annotations

import argparse


def is_override(arg: str) -> bool:
    """``key=value``, ``+key=value``, ``~key``: a Hydra override, not an option or its value."""
    return arg.startswith("~") or ("=" in arg and not arg.startswith("-"))


def parse_with_overrides(
    parser: argparse.ArgumentParser, argv: list[str]
) -> tuple[argparse.Namespace, list[str]]:
    """The options and the Hydra overrides of ``argv``, overrides anywhere on the line:
    argparse alone takes one placed after a list option (``--seeds 1 2 3 key=value``,
    ``nargs="+"`` is greedy) for one more value of it. The parser's own ``overrides``
    positional, if it has one, is empty then; the overrides keep their order."""
    overrides = [a for a in argv if is_override(a)]
    args = parser.parse_args([a for a in argv if not is_override(a)])
    return args, [*getattr(args, "overrides", []), *overrides]
