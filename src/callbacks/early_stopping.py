"""Lightning's ``EarlyStopping``, its state key formatted once (src/callbacks/state_key.py)."""

from __future__ import annotations

from lightning.pytorch.callbacks import EarlyStopping as LightningEarlyStopping

from src.callbacks.state_key import FixedStateKey


class EarlyStopping(FixedStateKey, LightningEarlyStopping):
    """``lightning.pytorch.callbacks.EarlyStopping``, same arguments and checkpoint key."""
