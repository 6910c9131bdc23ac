"""The run's CPU settings: torch threads shared out among side-by-side jobs, and the
NVML-based CUDA check skipped where there is no NVIDIA driver."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from src.utils import cpu
from src.utils.errors import UserInputError
from tests.conftest import ROOT


def config(threads=None):
    return OmegaConf.create({"extras": {"torch_threads": threads}})


def test_explicit_threads_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert cpu.torch_threads(config(1)) == (1, "extras.torch_threads")


def test_omp_num_threads_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cpu.torch_threads(config()) == (None, "OMP_NUM_THREADS=3")


def test_cores_are_shared_out_among_parallel_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpu, "usable_cores", lambda: 8)
    monkeypatch.setattr(cpu, "jobs_side_by_side", lambda cfg: 3)
    assert cpu.torch_threads(config()) == (2, "8 cores / 3 job(s) side by side")
    monkeypatch.setattr(cpu, "jobs_side_by_side", lambda cfg: 16)
    assert cpu.torch_threads(config())[0] == 1  # never zero


def test_a_lone_run_uses_every_core(monkeypatch: pytest.MonkeyPatch) -> None:
    from hydra.core.hydra_config import HydraConfig

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    # no Hydra app: not the config an earlier test composed (hydra/launcher=parallel: 2 jobs)
    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)
    assert cpu.jobs_side_by_side(config()) == 1  # no Hydra app, no launcher
    assert cpu.torch_threads(config())[0] == cpu.usable_cores()


@pytest.mark.parametrize("bad", [0, -2, "two", True])
def test_bad_thread_counts_are_refused(bad) -> None:
    with pytest.raises(UserInputError, match="extras.torch_threads"):
        cpu.torch_threads(config(bad))


@pytest.mark.skipif(os.path.exists("/proc/driver/nvidia"), reason="an NVIDIA driver is here")
def test_no_driver_no_nvml_check(monkeypatch: pytest.MonkeyPatch) -> None:
    import lightning  # noqa: F401  (sets the NVML check on)

    # the NVML path asks torch.cuda.device_count() (which tries NVML) at every call
    asked = []
    counted = torch.cuda.device_count
    monkeypatch.setattr(torch.cuda, "device_count", lambda: asked.append(1) or counted())
    monkeypatch.setenv(cpu.NVML_CHECK, "1")
    torch.cuda.is_available()
    assert asked or not torch.version.cuda  # a CPU build of torch never gets that far
    assert cpu.skip_nvml_check_without_gpu() is True
    assert os.environ[cpu.NVML_CHECK] == "0"
    asked.clear()
    assert torch.cuda.is_available() is False and not asked
    assert cpu.skip_nvml_check_without_gpu() is False  # once is enough


@pytest.mark.skipif(os.path.exists("/proc/driver/nvidia"), reason="an NVIDIA driver is here")
def test_nvml_check_stays_off_whatever_was_imported_first(tmp_path) -> None:
    # a script that calls use_cpu_wisely before Lightning is imported (as the epoch
    # benchmark did) must not get the check back when the trainer imports Lightning
    script = (
        "import os, sys; sys.path.insert(0, sys.argv[1])\n"
        "from src.utils import cpu\n"
        "assert 'lightning' not in sys.modules\n"
        "cpu.skip_nvml_check_without_gpu()\n"
        "import lightning\n"
        "print(os.environ.get(cpu.NVML_CHECK))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(ROOT)], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "0"
