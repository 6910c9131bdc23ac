"""A finished training run, read back: the one way eval, predict, export, LoRA and the
notebooks restore a run.

``TrainingRun.read(run_dir)`` reads ``<run_dir>/.hydra/config.yaml`` through
``src.utils.checkpoints.run_config``, the single place a saved config is loaded (and
checked: only allow-listed ``_target_``s unless ``trust``). ``TrainingRun.of(cfg)``
serves a tool config: its ``run_dir`` (the run's own data and model, its best
checkpoint unless ``ckpt_path`` is given), or a ``ckpt_path`` with the configured
data and model. From there:

- ``checkpoint_path`` / ``best_checkpoint()`` / ``last_checkpoint()``: which weights;
- ``datamodule()``: the run's data module; ``load_datamodule_state`` gives it the state
  the checkpoint saved of it (a regression module's scaling);
- ``model(datamodule)``: the task module with the checkpoint's weights, checked first
  (a checkpoint of another architecture is one clear message);
- ``adopt(cfg)``: the run's data, model and checkpoint written into a tool's config,
  for tools that build a trainer and loggers from it (eval).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from src.utils.checkpoints import (
    best_checkpoint,
    check_checkpoint_fits,
    read_checkpoint,
    run_config,
)
from src.utils.errors import UserInputError


def overrides_of_data_or_model() -> list[str]:
    """The command line's overrides of the ``data`` or ``model`` config (values and group
    options: ``data.batch_size=8``, ``model=cnn``, ``model/optimizer=sgd``), which a run
    rebuilt from its directory does not take."""
    from hydra.core.hydra_config import HydraConfig

    from src.utils.loggers import override_key

    if not HydraConfig.initialized():
        return []
    found = []
    for override in HydraConfig.get().overrides.task:
        if re.split(r"[./@]", override_key(override), maxsplit=1)[0] in ("data", "model"):
            found.append(override)
    return found


@dataclass(frozen=True)
class TrainingRun:
    """A run's config (data and model at least) and the checkpoint to restore.

    Attributes:
        cfg: the run's saved config, or the tool's own config for a bare ``ckpt_path``.
        ckpt_path: the checkpoint given (None: the run's best, see ``checkpoint_path``).
        run_dir: the run directory, when there is one.
    """

    cfg: DictConfig
    ckpt_path: Path | None = None
    run_dir: Path | None = None
    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def read(
        cls, run_dir: str | Path, ckpt_path: str | Path | None = None, trust: bool = False
    ) -> TrainingRun:
        """The run in ``run_dir``; its checkpoint is ``ckpt_path``, or else its best one."""
        cfg = run_config(run_dir, trust=trust)  # the one place a saved config is loaded
        return cls(cfg, Path(ckpt_path) if ckpt_path else None, Path(run_dir))

    @classmethod
    def of(cls, cfg: DictConfig, task: str = "restore") -> TrainingRun:
        """The run a tool's config names: ``run_dir=`` (with an optional ``ckpt_path=``),
        or ``ckpt_path=`` with the tool's own data and model configs."""
        if cfg.get("run_dir"):
            run = cls.read(cfg.run_dir, cfg.get("ckpt_path"), bool(cfg.get("trust_run_dir")))
            ignored = overrides_of_data_or_model()
            if ignored:
                import logging

                logging.getLogger(__name__).warning(
                    f"{' '.join(ignored)}: not applied. run_dir= rebuilds the data and model "
                    f"from {run.run_dir}/.hydra/config.yaml as the run saved them; to {task} "
                    "with other data or model settings, give ckpt_path=<file.ckpt> and them."
                )
            return run
        if not cfg.get("ckpt_path"):
            raise UserInputError(
                f"Give the model to {task}: run_dir=<training run> or ckpt_path=<file.ckpt>."
            )
        return cls(cfg, Path(cfg.ckpt_path))

    @property
    def name(self) -> str:
        return self.run_dir.name if self.run_dir else str(self.ckpt_path)

    @property
    def checkpoint_path(self) -> Path:
        """The checkpoint to restore: the one given, or the run's best (found on first use)."""
        if self.ckpt_path is not None:
            return self.ckpt_path
        if "best" not in self._cache:
            self._cache["best"] = self.best_checkpoint()
        return self._cache["best"]

    def best_checkpoint(self) -> Path:
        return best_checkpoint(self._directory())

    def last_checkpoint(self) -> Path:
        path = self._directory() / "checkpoints" / "last.ckpt"
        if not path.is_file():
            raise UserInputError(f"Run {self.run_dir} has no {path.name} in {path.parent}/.")
        return path

    def checkpoint(self) -> dict[str, Any]:
        """The checkpoint, read once (``weights_only=True``)."""
        if "checkpoint" not in self._cache:
            self._cache["checkpoint"] = read_checkpoint(self.checkpoint_path)
        return self._cache["checkpoint"]

    def datamodule(self) -> Any:
        """The run's data module (not set up: nothing is read yet)."""
        import hydra

        return hydra.utils.instantiate(self.cfg.data)

    def load_datamodule_state(self, datamodule: Any) -> None:
        """Load the state the checkpoint saved of ``datamodule`` (a regression module's
        scaling; Lightning keys it by the class's qualified name)."""
        key = type(datamodule).__qualname__
        if key not in self.checkpoint():
            raise UserInputError(
                f"Checkpoint {self.checkpoint_path} holds no scaling of {key}: it was "
                "trained on other data. Pass run_dir=<its training run>, or the data=... "
                "it was trained with."
            )
        datamodule.load_state_dict(self.checkpoint()[key])

    def model(self, datamodule: Any, weights: bool = True) -> Any:
        """The run's task module, with the checkpoint's weights (checked to fit first)
        unless ``weights`` is false."""
        from src.utils.instantiators import instantiate_model

        module = instantiate_model(self.cfg.model, datamodule)
        if weights:
            check_checkpoint_fits(self.checkpoint_path, module, self.run_dir)
            module.load_state_dict(self.checkpoint()["state_dict"])
        return module

    def adopt(self, cfg: DictConfig) -> None:
        """Write the run's data, model and checkpoint into the tool config ``cfg``."""
        with open_dict(cfg):
            cfg.data = self.cfg.data
            cfg.model = self.cfg.model
            cfg.ckpt_path = str(self.checkpoint_path)

    def _directory(self) -> Path:
        if self.run_dir is None:
            raise UserInputError(
                f"{self.ckpt_path} is a checkpoint file, not a run: pass run_dir=<run>."
            )
        return self.run_dir
