"""A callback ``state_key`` formatted once instead of at every hook call.

Lightning formats ``f"[Callback]{callback.state_key}.{hook}"`` for every callback at
every hook it calls, several times a training step. ``ModelCheckpoint`` and
``EarlyStopping`` build that key as a ``repr`` of settings fixed at construction
(~2 us each time on the build machines); the key stays the same (checkpoints written
with Lightning's own classes resume), it is only kept.
"""

from __future__ import annotations


class FixedStateKey:
    """Mixin, first in the bases: the parent's ``state_key``, computed on first use."""

    @property
    def state_key(self) -> str:
        if "_state_key" not in self.__dict__:
            self.__dict__["_state_key"] = super().state_key  # type: ignore[misc]
        return self.__dict__["_state_key"]
