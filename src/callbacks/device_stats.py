"""Lightning's device statistics, with a first CPU reading that measures something."""

from __future__ import annotations

from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import DeviceStatsMonitor as LightningDeviceStatsMonitor


class DeviceStatsMonitor(LightningDeviceStatsMonitor):
    """Lightning's ``DeviceStatsMonitor`` (same metric names), its CPU clock started at
    setup: ``psutil.cpu_percent()`` measures since its previous call and answers the
    first with a meaningless 0.0, so each run's first ``cpu_percent`` read 0 %."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "fit" and self._cpu_stats is not False:
            import psutil

            psutil.cpu_percent()  # the reference point of the first reading
