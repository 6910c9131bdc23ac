"""The one skeleton of every script: ``@entry_point("<root config>.yaml")`` over its ``main``.

    @entry_point("split.yaml")
    def main(cfg: DictConfig) -> None:
        split(cfg)

    if __name__ == "__main__":
        main()

What it does, in order, so no script spells it out again:

1. Hydra's main on ``configs/<config_name>`` (the project's config folder, wherever the
   script lives: ``src/train.py``, ``src/tools/``, ``src/reports/``, a feature folder);
   ``--help`` prints the script's own options (``src/utils/tool_help.py``); a single run
   composes its config once (``src/utils/compose_once.py``);
2. in a config that runs a trainer (it has a ``trainer`` node), the types and ranges of
   its main values (``src/utils/config_checks.py``), before anything heavy is imported
   (a single run was checked before Hydra made its directory; a multirun job refused
   here records ``failed`` in the directory Hydra made for it);
3. ``extras(cfg)`` (``src/utils/extras.py``: known-noise filters, tags, config tree) when
   the composed config has an ``extras`` node and the script does not say
   ``extras=False`` (a report that composes train.yaml only to read it); a light tool
   composes none and never imports Lightning;
4. a ``UserInputError`` anywhere below becomes its message alone on stderr and exit
   status 1 (``src/utils/errors.py``; ``HYDRA_FULL_ERROR=1`` shows the traceback);
5. the script's ``main(cfg)``, whose return value goes back to Hydra (a sweep's objective).

A script whose task makes a run (metrics, a model) decorates that task with
``src.utils.run_status.task_wrapper``, which records ``<run>/run_status.json``; the task
stays callable on a composed config (``train(cfg) -> (metric_dict, object_dict)``).

Light on purpose: only Hydra, the help and the error modules are imported here.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from src.utils import tool_help
from src.utils.compose_once import composed_once
from src.utils.errors import UserInputError, exit_on_user_error, in_multirun

CONFIGS = str(Path(__file__).resolve().parents[2] / "configs")


def _record_refused_job(error: UserInputError) -> None:
    """A job of a multirun refused by the config checks: Hydra has made its directory
    (a single run is refused before that, by ``src.utils.run_dir.ProtectRunDir``), which
    says so in its ``run_status.json`` rather than stay a run of unknown status."""
    from hydra.core.hydra_config import HydraConfig

    if not in_multirun():
        return
    from src.utils.run_status import write_status

    status = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    write_status(HydraConfig.get().runtime.output_dir, status)


def entry_point(
    config_name: str, extras: bool = True
) -> Callable[[Callable[[DictConfig], Any]], Callable[[], Any]]:
    """Make ``main(cfg)`` a script entry point on ``configs/<config_name>``."""

    def decorate(main: Callable[[DictConfig], Any]) -> Callable[[], Any]:
        @functools.wraps(main)  # Hydra names the job and finds the script through __wrapped__
        def run(cfg: DictConfig) -> Any:
            if "trainer" in cfg:
                from src.utils.config_checks import check_config

                try:
                    check_config(cfg)
                except UserInputError as error:
                    _record_refused_job(error)
                    raise
            if extras and cfg.get("extras") is not None:
                from src.utils.extras import extras as run_extras

                run_extras(cfg)
            return main(cfg)

        hydra_main = hydra.main(version_base="1.3", config_path=CONFIGS, config_name=config_name)
        wrapped = hydra_main(exit_on_user_error(run))

        @functools.wraps(wrapped)
        def script(*args: Any, **kwargs: Any) -> Any:
            tool_help.describe(sys.modules.get(main.__module__))  # what --help says first
            with composed_once():  # Hydra composes a single run's config once, not twice
                return wrapped(*args, **kwargs)

        return script

    return decorate
