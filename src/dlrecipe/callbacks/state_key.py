"""A checkpoint callback's state key, built once instead of at every hook call.

    python -c "from dlrecipe.callbacks.epochs import OneBasedModelCheckpoint as C; print(C(monitor='val/loss').state_key)"

Lightning labels every hook call of every callback with the callback's `state_key`, and
ModelCheckpoint builds its key as a repr of five of its settings: each training step rebuilt
it a dozen times (six hooks, two checkpoint callbacks). The settings are fixed when the
callback is made, so the key is too: the same string, built once. Checkpoints file the
callback's state under this key, so it must stay exactly Lightning's (tests/test_checkpoint_writes.py).
"""

from __future__ import annotations


class FixedStateKey:
    """Mixin before a Callback class: its state_key computed on first use and kept."""

    @property
    def state_key(self) -> str:
        key = self.__dict__.get("_fixed_state_key")
        if key is None:
            key = self._fixed_state_key = super().state_key
        return key
