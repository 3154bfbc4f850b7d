"""Records every epoch's logged metrics in memory and as `history.csv` in the run directory.

    python -m dlrecipe.train callbacks=default   # history is part of the default callbacks

Loggers write metrics in their own formats (CSV, TensorBoard, W&B); the summary, the learning
curves and the reports need one logger-independent table, which this keeps: one row per epoch
with train and validation loss, the main metric and the learning rate.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from dlrecipe.errors import ConfigError


class History(pl.Callback):
    def __init__(self, filename: str = "history.csv"):
        self.filename = filename
        self.rows: list[dict[str, float]] = []
        # The columns of the file this process wrote (None: not written yet, or rows were
        # loaded from a checkpoint): a new row with the same columns is appended, not rewritten.
        self._columns: list[str] | None = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        row: dict[str, float] = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        for key, value in trainer.callback_metrics.items():
            if key.startswith(("train/", "val/")):
                row[key] = float(value)
        if trainer.optimizers:
            row["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        self.rows.append(row)
        if trainer.is_global_zero and trainer.default_root_dir:
            self.write(Path(trainer.default_root_dir) / self.filename)

    def write(self, path: Path) -> None:
        """Append the newest row, or rewrite the whole file when its columns changed.

        Rewriting every row each epoch made the history cost grow with the run's length.
        """
        newest = self.rows[-1] if self.rows else {}
        if self._columns is not None and path.is_file() and set(newest) <= set(self._columns):
            with path.open("a", newline="") as f:
                csv.DictWriter(f, fieldnames=self._columns).writerow(newest)
            return
        keys: list[str] = []
        for row in self.rows:
            keys += [k for k in row if k not in keys]
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.rows)
        self._columns = keys

    def state_dict(self) -> dict[str, Any]:
        # One JSON string, not a list of dicts: torch.save pays per pickled object, and the rows
        # (a dozen objects each) grew every checkpoint write with the run's length. JSON keeps
        # ints and floats exact (repr round-trips), NaN and inf too, and loads weights_only.
        return {"rows_json": json.dumps(self.rows)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Resuming a fit starts empty and takes the saved rows; validating or testing the best
        # checkpoint after a fit must not roll the history back to that checkpoint's epoch.
        if not self.rows:
            self.rows = saved_rows(state_dict)
            self._columns = None  # the file may hold rows past the checkpoint: rewrite it


def saved_rows(state: dict[str, Any]) -> list[dict[str, float]]:
    """The rows of a checkpoint's History state (also the older list-of-dicts form), checked:
    a checkpoint is read from disk, so a row must be a mapping of names to numbers."""
    rows: Any = state.get("rows", [])
    if "rows_json" in state:
        try:
            rows = json.loads(str(state["rows_json"]))
        except ValueError as err:
            raise ConfigError(
                f"the checkpoint's History state is not a JSON table ({err})"
            ) from err
    number = (int, float)
    if not isinstance(rows, list) or not all(
        isinstance(row, dict)
        and all(isinstance(k, str) and isinstance(v, number) and not isinstance(v, bool)
                for k, v in row.items())
        for row in rows
    ):  # fmt: skip
        raise ConfigError("the checkpoint's History state is not a list of {name: number} rows")
    return [dict(row) for row in rows]
