"""How a run uses this machine's CPU: torch's threads, and a CUDA check that costs per step.

``use_cpu_wisely(cfg)`` runs once per process, before anything is built.
"""

from __future__ import annotations

import os
from typing import Any

from src.utils.errors import UserInputError
from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__)

NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


def skip_nvml_check_without_gpu() -> bool:
    """Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` (so that asking for CUDA does
    not initialise it before a fork). With a CUDA build of torch and no NVIDIA driver,
    every ``torch.cuda.is_available()`` then tries to load NVML, fails, and tries again
    next time: about 60 us, and optimizers ask at every step. Without a driver there is
    no CUDA to protect, so the plain check (0.5 us, cached) is safe. Returns whether it
    switched.

    Lightning sets the variable when ``lightning.fabric`` is first imported, so that
    import happens here first: switched off before it, the check would be on again
    once a trainer is built (as it was in the epoch benchmark)."""
    import lightning.fabric  # noqa: F401  (sets the variable on its first import)

    if os.environ.get(NVML_CHECK) != "1" or os.path.exists("/proc/driver/nvidia"):
        return False
    os.environ[NVML_CHECK] = "0"
    return True


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def jobs_side_by_side(cfg: Any) -> int:
    """Jobs of this multirun that run at once on this machine: the joblib launcher's
    workers (``hydra/launcher=parallel``); 1 otherwise. (DDP ranks on one host are
    Lightning's: its DDP strategy divides the cores among them.)"""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return 1
    launcher = HydraConfig.get().get("launcher") or {}
    target = str(launcher.get("_target_", ""))  # Hydra's joblib launcher, or parallel's
    if "joblib" not in target and not target.endswith(".ParallelLauncher"):
        return 1
    n_jobs = int(launcher.get("n_jobs") or 1)
    return usable_cores() if n_jobs < 0 else max(1, n_jobs)


def torch_threads(cfg: Any) -> tuple[int | None, str]:
    """(threads, why) for ``extras.torch_threads``; ``None``: leave torch's own choice."""
    wanted = (cfg.get("extras") or {}).get("torch_threads")
    if wanted is not None:
        if not isinstance(wanted, int) or isinstance(wanted, bool) or wanted < 1:
            raise UserInputError(
                f"extras.torch_threads={wanted!r}: give a whole number >= 1, or null "
                "(the cores shared out among the jobs running side by side)."
            )
        return wanted, "extras.torch_threads"
    if "OMP_NUM_THREADS" in os.environ:  # the user's, joblib's or Lightning DDP's choice
        return None, f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"
    cores, jobs = usable_cores(), jobs_side_by_side(cfg)
    return max(1, cores // jobs), f"{cores} cores / {jobs} job(s) side by side"


def use_cpu_wisely(cfg: Any) -> None:
    """Set torch's intra-op threads (``extras.torch_threads``) and skip the NVML check
    where there is no GPU."""
    import torch

    skip_nvml_check_without_gpu()
    threads, why = torch_threads(cfg)
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    log.info(f"torch threads: {torch.get_num_threads()} ({why})")
