"""What the training monitor costs: digits CNN steps with and without callbacks=monitor.

    .venv/bin/python scripts/bench_monitor.py [--repeats 3] [--epochs 10]

Trains the default digits CNN (batch 64, 19 steps an epoch, early stopping off) with the
default callbacks and with callbacks=monitor, alternating the two in one process and
repeating, and prints the steady-state milliseconds per step (epochs 2..end, benchlib's
StepTimer) of each, the overhead in percent, and the cost of one monitored step. On a shared
machine runs are disturbed by other work, so the side-by-side overhead uses the fastest of the
repeats of each (the least disturbed); the last column is a second, noise-free view: the time
spent inside the monitor's own hooks, as a share of the monitored run's training time.

Cases: the CSV logger (scalars only), logger=many (CSV + TensorBoard: histograms and the filter
image too) at the default interval of 50 steps, and every 10 steps to show how it scales.
"""

from __future__ import annotations

import argparse
import importlib
import time
from typing import ClassVar

from benchlib import StepTimer, steady_seconds_per_step
from dlrecipe.callbacks.monitor import TrainingMonitor

CASES = {
    "csv, every 50 steps (default)": (["logger=csv"], 50),
    "csv + tensorboard, every 50": (["logger=many"], 50),
    "csv + tensorboard, every 10": (["logger=many"], 10),
}


class TimedMonitor(TrainingMonitor):
    """The monitor, with the wall time of its hooks summed (after the first epoch, as StepTimer)."""

    seconds: ClassVar[float] = 0.0

    def _timed(self, hook, trainer, *args):
        if trainer.current_epoch < 1:
            return hook(trainer, *args)
        start = time.perf_counter()
        hook(trainer, *args)
        TimedMonitor.seconds += time.perf_counter() - start

    def on_train_batch_start(self, trainer, *args):
        self._timed(super().on_train_batch_start, trainer, *args)

    def on_before_optimizer_step(self, trainer, *args):
        self._timed(super().on_before_optimizer_step, trainer, *args)

    def on_train_batch_end(self, trainer, *args):
        self._timed(super().on_train_batch_end, trainer, *args)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    common = [
        f"trainer.max_epochs={args.epochs}",
        "callbacks.early_stopping=null",  # the same number of steps in every run
        "report.enabled=false",
    ]
    # Hydra imports the callback by name: count in that module's class, not __main__'s copy.
    timed = importlib.import_module("bench_monitor").TimedMonitor
    steady_seconds_per_step(common)  # warm-up: imports, allocator, first-use costs
    print(f"{'case':30s} {'off ms/step':>11s} {'on ms/step':>10s} {'overhead':>8s} "
          f"{'ms per monitored step':>21s} {'monitor hooks':>13s}")  # fmt: skip
    for case, (logger, every) in CASES.items():
        off, on, hooks = [], [], []
        for _ in range(args.repeats):  # alternate, so drifts in machine load hit both alike
            off.append(steady_seconds_per_step([*common, *logger]))
            timed.seconds = 0.0
            on.append(steady_seconds_per_step([*common, *logger, "callbacks=monitor",
                                               "callbacks.monitor._target_=bench_monitor.TimedMonitor",
                                               f"callbacks.monitor.every_n_steps={every}"]))  # fmt: skip
            hooks.append(timed.seconds / StepTimer.last["seconds"])
        t_off, t_on = min(off), min(on)
        print(f"{case:30s} {t_off * 1e3:11.2f} {t_on * 1e3:10.2f} {100 * (t_on / t_off - 1):7.1f}% "
              f"{(t_on - t_off) * every * 1e3:21.1f} {100 * min(hooks):12.1f}%")  # fmt: skip


if __name__ == "__main__":
    main()
