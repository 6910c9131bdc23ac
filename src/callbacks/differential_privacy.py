"""Differentially private training (DP-SGD) with Opacus, as a Lightning callback.

``callbacks=[default,dp]`` trains any task module privately without changing it:

- ``setup``: Opacus' ``GradSampleModule`` hooks the net's layers so every
  backward pass also leaves per-sample gradients (``p.grad_sample``). The
  wrapper is kept here, not in the module, so parameter names and checkpoints
  stay those of the plain net. Layers Opacus cannot handle (BatchNorm mixes the
  samples of a batch) stop the run with one message.
- ``on_fit_start``: the optimizer becomes Opacus' ``DPOptimizer`` (each sample's
  gradient clipped to ``max_grad_norm``, Gaussian noise of
  ``noise_multiplier x max_grad_norm`` added to their sum) with an RDP
  accountant attached to its steps. ``target_epsilon`` instead of a noise
  multiplier asks Opacus for the noise that spends exactly that budget over the
  run's optimizer steps.
- every epoch's end: ``train/epsilon``, the privacy spent so far at ``target_delta``.

Sampling: the template's loaders shuffle and cut fixed-size batches; they do not
draw Poisson samples. The accountant uses the sample rate ``1 / batches per
epoch``, as Opacus itself does with ``make_private(poisson_sampling=False)``;
the guarantee is the usual approximation for shuffled batches.
Why a callback and not ``PrivacyEngine.make_private``: that wants a torch
``DataLoader`` and returns a wrapped module; the callback keeps our loaders and
our module as they are.
"""

from __future__ import annotations

import warnings
from typing import Any

from lightning import Callback, LightningModule, Trainer

from src.utils.errors import UserInputError
from src.utils.logging_utils import RankedLogger

log = RankedLogger(__name__)


class DifferentialPrivacy(Callback):
    """DP-SGD for the module's ``net``; see the module docstring.

    Args:
        max_grad_norm: each sample's gradient is clipped to this L2 norm.
        noise_multiplier: noise standard deviation over ``max_grad_norm``; ``None``
            when ``target_epsilon`` is given.
        target_epsilon: the privacy budget for the whole run (Opacus picks the noise).
        target_delta: the delta of (epsilon, delta)-DP; below 1 / training samples.
        secure_mode: cryptographically safe noise (slower; for real deployments).
    """

    def __init__(
        self,
        max_grad_norm: float = 1.0,
        noise_multiplier: float | None = None,
        target_epsilon: float | None = None,
        target_delta: float = 1e-5,
        secure_mode: bool = False,
    ) -> None:
        if (noise_multiplier is None) == (target_epsilon is None):
            raise UserInputError(
                "callbacks.dp needs exactly one of noise_multiplier and target_epsilon "
                f"(got noise_multiplier={noise_multiplier}, target_epsilon={target_epsilon}): "
                "for example callbacks.dp.target_epsilon=8 callbacks.dp.noise_multiplier=null."
            )
        self.max_grad_norm = max_grad_norm
        self.noise_multiplier = noise_multiplier
        self.target_epsilon = target_epsilon
        self.target_delta = target_delta
        self.secure_mode = secure_mode
        self.sample_rate: float | None = None
        self.accountant: Any = None
        self.epsilon: float | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        from opacus import GradSampleModule

        check_trainer(trainer)
        check_layers(pl_module.net)
        # Opacus' hooks read the gradient with respect to each layer's output, which is all
        # they need; torch warns that the first layer's input (the data) has no gradient
        warnings.filterwarnings("ignore", message=r"Full backward hook is firing when gradients")
        # the wrapper's hooks live on the net's own layers: calling pl_module.net records
        # per-sample gradients, and the module's state_dict keeps its plain names
        self.grad_sample_module = GradSampleModule(pl_module.net, loss_reduction="mean")

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        from opacus.accountants import RDPAccountant
        from opacus.accountants.utils import get_noise_multiplier
        from opacus.optimizers import DPOptimizer

        batches = len(trainer.datamodule.train_dataloader())
        batch_size = int(trainer.datamodule.batch_size)
        self.sample_rate = 1.0 / batches
        total_steps = trainer.estimated_stepping_batches
        if self.target_epsilon is not None:
            with warnings.catch_warnings():
                # the search tries far too much noise on its way, whose epsilon Opacus finds
                # at its largest order and warns about; the epsilon reported each epoch
                # still warns if its bound is loose
                warnings.filterwarnings("ignore", message=r"Optimal order is the largest alpha")
                self.noise_multiplier = get_noise_multiplier(
                    target_epsilon=self.target_epsilon,
                    target_delta=self.target_delta,
                    sample_rate=self.sample_rate,
                    steps=int(total_steps),
                    accountant="rdp",
                )
        self.accountant = RDPAccountant()
        (optimizer,) = trainer.optimizers
        private = DPOptimizer(
            optimizer,
            noise_multiplier=self.noise_multiplier,
            max_grad_norm=self.max_grad_norm,
            expected_batch_size=batch_size,
            loss_reduction="mean",
            secure_mode=self.secure_mode,
        )
        private.attach_step_hook(
            self.accountant.get_optimizer_hook_fn(sample_rate=self.sample_rate)
        )
        # the schedulers keep working: DPOptimizer shares the wrapped optimizer's param_groups
        trainer.strategy.optimizers = [private]
        log.info(
            f"DP-SGD: noise multiplier {self.noise_multiplier:.4f}, max grad norm "
            f"{self.max_grad_norm}, sample rate {self.sample_rate:.5f} ({batches} batches of "
            f"{batch_size}), {total_steps} steps, delta {self.target_delta}"
        )

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.epsilon = float(self.accountant.get_epsilon(delta=self.target_delta))
        pl_module.log("train/epsilon", self.epsilon, prog_bar=True)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit" and getattr(self, "grad_sample_module", None) is not None:
            self.grad_sample_module._close()  # remove the hooks: test and predict run plain
            self.grad_sample_module = None


def check_trainer(trainer: Trainer) -> None:
    """Settings DP-SGD cannot combine with, as one message."""
    problems = []
    if trainer.accumulate_grad_batches != 1:
        problems.append(
            f"trainer.accumulate_grad_batches={trainer.accumulate_grad_batches} (use 1 and a "
            "larger data.batch_size)"
        )
    if trainer.gradient_clip_val:
        problems.append(
            f"trainer.gradient_clip_val={trainer.gradient_clip_val} (DP clips each sample's "
            "gradient to callbacks.dp.max_grad_norm; set gradient_clip_val=null)"
        )
    if trainer.datamodule is None or not hasattr(trainer.datamodule, "batch_size"):
        problems.append("no data module with a batch_size (DP needs the sample rate)")
    if trainer.max_epochs in (None, -1) and trainer.max_steps in (None, -1):
        problems.append("an endless run (set trainer.max_epochs or trainer.max_steps)")
    if problems:
        raise UserInputError(
            "Differential privacy (callbacks=dp) cannot run with " + "; ".join(problems) + "."
        )


def check_layers(net: Any) -> None:
    """Every layer must have per-sample gradients; BatchNorm, for one, has none."""
    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(net, strict=False)
    if not errors:
        return
    names = sorted({type(m).__name__ for m in net.modules() if "BatchNorm" in type(m).__name__})
    if names:
        raise UserInputError(
            f"Differential privacy (callbacks=dp) cannot train this net: its {', '.join(names)} "
            "layers mix the samples of a batch, so a sample's own gradient does not exist. Use "
            "a net without BatchNorm (model=mlp model.net.batch_norm=false) or one with GroupNorm "
            "or LayerNorm in its place."
        )
    raise UserInputError(
        "Differential privacy (callbacks=dp) cannot train this net: Opacus reports "
        + "; ".join(str(e).split(". ")[0] for e in errors)
        + ". Use a net whose layers Opacus supports."
    )
