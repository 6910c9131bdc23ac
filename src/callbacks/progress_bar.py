"""Lightning's rich progress bar, brought up to date a few times a second, not every batch.

Lightning's ``RichProgressBar`` moves the bar, reads every progress-bar metric
(``.item()`` on each: a device sync on a GPU) and soft-refreshes the console after
every training and validation batch, while its drawing thread redraws only
``refresh_rate`` times a second. On a small model that bookkeeping is ~2% of a
training step (profiled on the build machines). This bar does the same work at most
``updates_per_second`` times a second, and always on an epoch's first and last batch,
so the counts and metrics a person reads are the same.

It also stops at once. Lightning's drawing thread sleeps ``time.sleep(1 /
refresh_rate)`` between redraws (rich's own waits on an event), and the bar
joins it when a stage ends: the end of ``fit`` and of ``test`` each waited up to
a second at ``refresh_rate: 1``, about 1 s a run (0.98 s of a 15-epoch digits run
profiled; a sweep trial lasts ~3 s). This bar replaces the thread, as each stage
starts, by one that waits on its stop event.

A stage of one batch shows its rate (Lightning's bar said ``0.00it/s``: rich measures
speed between updates, and there was one).

And it shows the logger's version as the whole number it is (``v_num: 3``, not
``v_num: 3.000``; with several loggers the CSV or TensorBoard number, not the tail of an
MLflow run id), and each epoch with its own training metrics (Lightning's bar read
them before the module had logged them: each epoch showed the previous one's
``train/loss``).

Written to a file rather than a terminal (a sweep's or a cluster job's log, CI), rich
lays the bar out 80 columns wide: the metrics got the ~17 columns the bar leaves and
were wrapped between a name and its value (``val/acc_best:`` on one line, ``0.972
train/loss:`` on the next). There the console is ``LOG_WIDTH`` wide and each metric gets
a line of its own; a terminal, Jupyter, ``COLUMNS`` and a ``console_kwargs`` width or
``theme`` given in the config are left as they are.
"""

from __future__ import annotations

import os
import time
from typing import Any

from lightning.pytorch.callbacks import RichProgressBar as LightningRichProgressBar
from lightning.pytorch.callbacks.progress.rich_progress import (
    ProcessingSpeedColumn,
    RichProgressBarTheme,
    _RefreshThread,
)

from src.utils.errors import UserInputError


class PromptRefreshThread(_RefreshThread):
    """Lightning's drawing thread (a redraw when the bar asked for one, at most
    ``refresh_per_second`` times a second) whose wait ends as soon as it is stopped."""

    def run(self) -> None:
        while not self.done.wait(1 / self.refresh_per_second):
            if self.refresh_cond:
                with self.live._lock:
                    self.live.refresh()
                self.refresh_cond = False


class SpeedColumn(ProcessingSpeedColumn):
    """Lightning's ``it/s`` column, with the rate of a stage rich has no speed for: rich
    measures between updates, so a stage of one batch (``fast_dev_run``, a one-row
    prediction) said ``0.00it/s``. Its rate is then the batches done over the time taken;
    before the first batch the column is blank."""

    def render(self, task: Any) -> Any:
        from rich.text import Text

        speed = task.speed
        if speed is None and task.completed and task.elapsed:
            speed = task.completed / task.elapsed
        return Text("" if speed is None else f"{speed:>.2f}it/s", style=self.style)


LOG_WIDTH = 160  # a log file's line: the bar's columns and a metric beside them


def _writes_to_a_file() -> bool:
    """Whether rich's console writes to neither a terminal nor Jupyter (a log file), with
    no width of the user's (``COLUMNS``)."""
    import rich

    console = rich.get_console()
    return not console.is_terminal and not console.is_jupyter and "COLUMNS" not in os.environ


class RichProgressBar(LightningRichProgressBar):
    """``RichProgressBar`` whose per-batch updates are spaced ``1 / updates_per_second`` s.

    Args:
        updates_per_second: most bar and metric updates a second (> 0).
        *args, **kwargs: Lightning's (``refresh_rate``, ``leave``, ``theme``, ...).
    """

    def __init__(self, *args: Any, updates_per_second: float = 10.0, **kwargs: Any) -> None:
        if not updates_per_second > 0:
            raise UserInputError(
                f"callbacks.rich_progress_bar.updates_per_second={updates_per_second}: "
                "give a number > 0 (10 is the default)."
            )
        super().__init__(*args, **kwargs)
        if _writes_to_a_file() and "width" not in self._console_kwargs:
            self._console_kwargs = {**self._console_kwargs, "width": LOG_WIDTH}
            if "theme" not in kwargs and len(args) < 3:  # Lightning's default theme
                self.theme = RichProgressBarTheme(metrics_text_delimiter="\n")
        self._interval = 1.0 / updates_per_second
        self._next_update = 0.0
        self._last_train_batch = self._shown_train_batch = -1  # this epoch's, and on the bar

    def _init_progress(self, trainer: Any) -> None:
        super()._init_progress(trainer)
        live = self.progress.live if self.progress is not None else None
        slow = getattr(live, "_refresh_thread", None)
        if isinstance(slow, _RefreshThread) and not isinstance(slow, PromptRefreshThread):
            # stopped, Lightning's thread ends after its sleep without drawing again (it
            # checks the event first); nobody waits for it (a daemon thread)
            slow.stop()
            live._refresh_thread = PromptRefreshThread(live, slow.refresh_per_second)
            live._refresh_thread.start()

    def configure_columns(self, trainer: Any) -> list:
        return [
            SpeedColumn(style=c.style) if isinstance(c, ProcessingSpeedColumn) else c
            for c in super().configure_columns(trainer)
        ]

    def _due(self, batch_idx: int, batches: int | float) -> bool:
        now = time.monotonic()
        if batch_idx == 0 or batch_idx + 1 >= batches or now >= self._next_update:
            self._next_update = now + self._interval
            return True
        return False

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._last_train_batch = batch_idx
        if self._due(batch_idx, self.total_train_batches):
            self._shown_train_batch = batch_idx
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        # an epoch that ends before the batch count the bar expects (SWA's BatchNorm
        # epoch counts one batch more than it runs) still shows its last batch: the bar
        # stood at the update before it (27/33)
        if self._last_train_batch > self._shown_train_batch:
            super().on_train_batch_end(trainer, pl_module, None, None, self._last_train_batch)
        self._last_train_batch = self._shown_train_batch = -1
        super().on_train_epoch_end(trainer, pl_module)

    def on_validation_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.is_disabled:  # DDP's ranks 1..: the bar never learnt the current dataloader
            return
        if self._due(batch_idx, self.total_val_batches_current_dataloader):
            super().on_validation_batch_end(
                trainer, pl_module, outputs, batch, batch_idx, dataloader_idx
            )

    def get_metrics(self, trainer: Any, pl_module: Any) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        # several loggers: Lightning joins their versions ("0_<MLflow run id>") and shows
        # the last 4 characters, an MLflow run id's tail; the version number is the first
        # logger's that has one (CSV, TensorBoard)
        numbers = [lg.version for lg in trainer.loggers if isinstance(lg.version, int)]
        if len(trainer.loggers) > 1 and numbers and "v_num" not in trainer.progress_bar_metrics:
            items["v_num"] = numbers[0]
        # the logger's version is a count; the bar's metric column formats every number
        # as a metric (".3f"), which showed "v_num: 0.000". A str is shown as it is.
        if isinstance(items.get("v_num"), int):
            items["v_num"] = str(items["v_num"])
        return items

    # The module logs its epoch's training metrics (train/loss, train/acc) in its own
    # on_train_epoch_end, which Lightning calls after the bar's: the bar showed each epoch
    # with the training metrics of the epoch before. It reads them again once they are
    # logged: as the next epoch starts, and when training ends.
    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        self._update_metrics(trainer, pl_module)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._update_metrics(trainer, pl_module)
        self.refresh()
        super().on_train_end(trainer, pl_module)
