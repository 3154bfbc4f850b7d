"""What the benchmark scripts share: one quiet, real training run in this process, timed."""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import time
from pathlib import Path
from typing import ClassVar

from dlrecipe.builders import compose
from dlrecipe.train import train

# What the benchmarks time with: wall time (the default), or this process's CPU time with
# --clock cpu, steadier on a machine shared with other jobs (it leaves out time spent waiting
# for a core, and counts a helper thread's work, such as an asynchronous checkpoint write).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def set_clock(name: str) -> None:
    global clock
    clock = CLOCKS[name]


# A normal run without progress-bar drawing or the model table: what is timed is training.
QUIET = [
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
    "+trainer.enable_model_summary=false",  # else Lightning adds its own summary table
]


def timed_run(overrides: list[str]) -> tuple[float, dict]:
    """(wall seconds of train(), its summary.json; for K-fold, the first fold's)."""
    with tempfile.TemporaryDirectory() as out:
        cfg = compose([*QUIET, f"paths.output_dir={out}", *overrides])
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # the run's summary table: not the bench's
            train(cfg)
        seconds = time.perf_counter() - start
        summary = Path(out) / "summary.json"
        if not summary.is_file():
            summary = next(Path(out).glob("*/summary.json"))
        return seconds, json.loads(summary.read_text())


class StepTimer:
    """A callback timing steady-state training: from the second epoch's start to the end of fit.

    The first epoch (allocations, lazy initialization) and the fit set-up are left out, as in
    the raw loop's measurement, so what differs is the cost per step and per epoch.
    """

    last: ClassVar[dict] = {}

    def __new__(cls):
        import lightning.pytorch as pl

        class _Timer(pl.Callback):
            def on_train_epoch_start(self, trainer, pl_module):
                if trainer.current_epoch == 1:
                    StepTimer.last = {"start": clock(), "step": trainer.global_step}

            def on_train_end(self, trainer, pl_module):
                StepTimer.last["seconds"] = clock() - StepTimer.last["start"]
                StepTimer.last["steps"] = trainer.global_step - StepTimer.last["step"]

        return _Timer()


def steady_seconds_per_step(overrides: list[str]) -> float:
    timed_run([*overrides, "+callbacks.step_timer._target_=benchlib.StepTimer"])
    return StepTimer.last["seconds"] / StepTimer.last["steps"]
