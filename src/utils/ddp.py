"""DDP under Hydra multiruns: each job's extra ranks re-run that job, not the sweep.

Without torchrun or SLURM, Lightning's subprocess launcher (``trainer=ddp``,
``trainer=ddp_sim``) starts ranks 1..N-1 by re-running the program:
``python <sys.argv[0]>`` (or ``python -m <__main__'s module>``), then
``sys.argv[1:]``, ``hydra.run.dir=<HydraConfig run.dir>`` and
``hydra.output_subdir=null`` (``_hydra_subprocess_cmd`` in
lightning/fabric/strategies/launchers/subprocess_script.py). For a single run
that is right. In a multirun it is not:

- ``sys.argv`` holds ``-m`` and the whole sweep, so every extra rank starts a
  sweep of its own (a second multirun directory, Optuna trials of its own), and
  ``run.dir`` is not the job's directory;
- in a worker of Hydra's joblib launcher ``__main__`` is joblib's worker
  module, which Lightning would start instead of the script;
- the launcher leaves ``LOCAL_RANK`` and friends in ``os.environ``, from which
  Lightning concludes that the next job's processes were started externally:
  it starts none and waits for them.

``multirun_job_as_single_run`` fixes these for one job at a time, and (in single
runs too) ends the job's rank processes with the job (``ranks_ended``). During the
job, ``sys.argv`` is the script with this job's own overrides (no ``-m``),
``run.dir`` is the job's directory, and ``__main__`` names the script, so the
extra ranks compose the job's config and join its directory, where rank 0
alone writes (Lightning's rank-zero guards). After the job the launcher's
environment variables and process group are gone.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import read_write

from src.utils.errors import UserInputError, in_multirun

# what Lightning's subprocess launcher sets in os.environ for its ranks
LAUNCHER_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
# rank 0 puts its checked run directory here; the ranks it starts inherit it and may join
# that directory (src/utils/run_dir.py)
JOIN_ENV = "LIGHTNING_HYDRA_LAB_RUN_DIR"


def single_run_argv(script: str, hydra_cfg: Any) -> list[str]:
    """The command line of one multirun job as a single run, from the job's Hydra
    config: the script, the config it was composed from, the Hydra overrides but
    ``hydra.mode``, then the job's own overrides."""
    flags = [f"--config-name={hydra_cfg.job.config_name}"]
    for source in hydra_cfg.runtime.config_sources:
        where = source.path if source.schema == "file" else f"{source.schema}://{source.path}"
        if source.provider == "main":  # configs/, or what --config-path named
            flags.append(f"--config-path={where}")
        elif source.provider == "command-line":  # --config-dir
            flags.append(f"--config-dir={where}")
    # Hydra refuses sweeps over hydra.* keys: only -m, as hydra.mode, needs to go; and
    # hydra.mode=RUN last, since an hparams_search config sets MULTIRUN itself (without
    # it rank 1 would start an Optuna sweep of its own on the same study)
    hydra_overrides = [o for o in hydra_cfg.overrides.hydra if not o.startswith("hydra.mode=")]
    return [script, *flags, *hydra_overrides, *hydra_cfg.overrides.task, "hydra.mode=RUN"]


@contextmanager
def multirun_job_as_single_run(script: str) -> Iterator[None]:
    """Around one job's training (``script``: the entry point's ``__file__``): in a
    multirun, let Lightning's extra ranks re-run this job as a single run in its
    directory, and clean up after them. Outside a multirun (single runs, and the
    extra ranks themselves) it does nothing."""
    if not in_multirun():
        with ranks_ended():
            yield
        return
    if "TORCHELASTIC_RUN_ID" in os.environ:  # set by torchrun in each process it starts
        raise UserInputError(
            "A multirun (-m) under torchrun: every process would run the whole sweep on "
            "its own. Start the sweep without torchrun (python src/train.py -m trainer=ddp "
            "...): Lightning starts the processes of each job itself."
        )
    import torch.distributed as dist

    import __main__

    hydra_cfg = HydraConfig.get()
    saved_argv, saved_spec = sys.argv, __main__.__spec__
    saved_env = {key: os.environ.get(key) for key in (*LAUNCHER_ENV, JOIN_ENV)}
    group_before = dist.is_available() and dist.is_initialized()

    sys.argv = single_run_argv(script, hydra_cfg)
    main_file = getattr(__main__, "__file__", None)
    if main_file is None or Path(main_file).resolve() != Path(script).resolve():
        __main__.__spec__ = None  # a launcher's worker: Lightning runs sys.argv[0] then
    # Hydra sets a fresh HydraConfig for every job, so this edit ends with the job
    with read_write(hydra_cfg.run):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
    os.environ[JOIN_ENV] = str(Path(hydra_cfg.runtime.output_dir).resolve())  # ranks join it
    try:
        with ranks_ended():
            yield
    finally:
        sys.argv, __main__.__spec__ = saved_argv, saved_spec
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if not group_before and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


@contextmanager
def ranks_ended() -> Iterator[None]:
    """Around one run or job: when it ends, the rank processes trainer=ddp_sim started
    for it have ended too (waited for, or killed when they hang or the job failed; see
    src/utils/ddp_launcher.py, imported only where such a trainer was built)."""
    failed = True
    try:
        yield
        failed = False
    finally:
        launcher = sys.modules.get("src.utils.ddp_launcher")
        if launcher is not None:
            launcher.finish_ranks(failed)


def is_extra_rank() -> bool:
    """Whether this process is rank 1.. of a DDP run (Lightning's launcher, torchrun or
    SLURM set these): it joins rank 0's run directory instead of making its own."""
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        value = os.environ.get(key)
        if value is not None and value.isdigit() and int(value) > 0:
            return True
    return False
