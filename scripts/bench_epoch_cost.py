"""Where dlrecipe's own time goes in one bench case: each part switched off in turn, ms per epoch.

    .venv/bin/python scripts/bench_epoch_cost.py --threads 1 --clock cpu [--repeats 3] [--epochs 20] [--case 4]

Trains one of make bench's cases (default 4, the breast_cancer MLP: batch 32, 12 steps an
epoch; 1 is the digits CNN at batch 32; dlrecipe's side of scripts/bench_throughput.py) with
everything on, then with one part off at a time (a callback
set to null, the CSV logger off, or one of the two callbacks train.py always adds), then with
all of them off, and bare Lightning on the same batches. The variants alternate and repeat in
one process; medians count. On a shared machine a part under ~1 ms an epoch is within the
noise, so a second table reads the CPU time spent inside each hook of a run with everything on
(Lightning's public Profiler interface): per epoch and per training step; a third subtracts the
same hooks' time in bare Lightning: where dlrecipe's own microseconds per step go.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import re
import statistics
import sys
import tempfile

import torch
from lightning.pytorch.profilers import Profiler

import benchlib
import dlrecipe.train as train_module
from bench_throughput import CASES, COMMON, lightning_loop
from benchlib import StepTimer
from dlrecipe.builders import compose

CASE = [*COMMON, *CASES["breast_cancer MLP, batch 32"], "trainer.accelerator=cpu"]  # --case


def steps_per_epoch(epochs: int) -> float:
    """Training steps an epoch of the last timed run of `epochs` (StepTimer counts from epoch 2)."""
    return StepTimer.last["steps"] / (epochs - 1)


IDLE = 6  # callbacks dlrecipe's bench side runs beyond the bare side's StepTimer
LOGGED = 5  # values dlrecipe logs an epoch: train/val loss and main metric, the learning rate

# What train.py adds to every fit: not config entries, so dropped here by class name.
ALWAYS = ("DivergenceGuard", "RandomState")
PARTS = {
    "best checkpoint": ["callbacks.model_checkpoint=null"],
    "last.ckpt": ["callbacks.last_checkpoint=null"],
    "history": ["callbacks.history=null"],
    "LR monitor": ["callbacks.lr_monitor=null"],
    "CSV logger": ["logger=none"],
    "DivergenceGuard": ["DivergenceGuard"],
    "RandomState": ["RandomState"],
}


@contextlib.contextmanager
def without(classes: list[str]):
    """train.py's own callbacks of these classes left out of the Trainer (benchmark only)."""
    build = train_module.build_trainer

    def build_without(cfg, run_dir, extra, **kwargs):
        kept = [c for c in extra if type(c).__name__ not in classes]
        return build(cfg, run_dir, kept, **kwargs)

    train_module.build_trainer = build_without
    try:
        yield
    finally:
        train_module.build_trainer = build


class HookTimes(Profiler):
    """CPU time inside every profiled action (hooks, save_checkpoint, ...), from epoch 2 on."""

    last: HookTimes | None = None

    def __init__(self) -> None:
        super().__init__()
        self.started: dict[str, float] = {}
        self.seconds: collections.Counter = collections.Counter()
        self.calls: collections.Counter = collections.Counter()
        HookTimes.last = self

    def start(self, action_name: str) -> None:
        self.started[action_name] = benchlib.clock()

    def stop(self, action_name: str) -> None:
        began = self.started.pop(action_name, None)
        if began is not None and StepTimer.last.get("start") is not None:
            self.seconds[action_name] += benchlib.clock() - began
            self.calls[action_name] += 1

    def summary(self) -> str:
        return ""


def seconds_per_epoch(off: list[str], epochs: int, extra: tuple[str, ...] = ()) -> float:
    """Steady-state seconds per epoch (epochs 2..end) with the parts in `off` switched off."""
    overrides = [o for o in off if "=" in o]
    StepTimer.last = {}
    with tempfile.TemporaryDirectory() as out, without([o for o in off if "=" not in o]):
        cfg = compose([
            *benchlib.QUIET, f"paths.output_dir={out}", *CASE, f"trainer.max_epochs={epochs}",
            *extra, "+callbacks.step_timer._target_=benchlib.StepTimer", *overrides,
        ])  # fmt: skip
        with contextlib.redirect_stdout(io.StringIO()):
            train_module.train(cfg)
    return StepTimer.last["seconds"] / (epochs - 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--clock", choices=sorted(benchlib.CLOCKS), default="wall")
    parser.add_argument("--case", type=int, default=4, help="make bench's case number (1-4)")
    args = parser.parse_args()
    global CASE
    CASE = [*COMMON, *list(CASES.values())[args.case - 1], "trainer.accelerator=cpu"]
    sys.modules.setdefault("bench_epoch_cost", sys.modules[__name__])  # HookTimes by its name
    benchlib.set_clock(args.clock)
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = {"everything on": [], **PARTS}
    # No ModelCheckpoint left: without this Lightning would add its own default one.
    variants["all of the above off"] = [
        *(o for off in PARTS.values() for o in off),
        "trainer.enable_checkpointing=false",
    ]
    times: dict[str, list[float]] = {}
    bare: list[float] = []
    # Lightning calls every hook of every callback; dlrecipe's side has IDLE more callbacks than
    # the bare side (two checkpoints, LR monitor, history, DivergenceGuard, RandomState).
    idle: list[float] = []
    logging: list[float] = []  # the bare side logging LOGGED values an epoch instead of one
    for repeat in range(args.repeats + 1):  # the first round warms up and is not counted
        for name, off in variants.items():
            seconds = seconds_per_epoch(off, args.epochs)
            if repeat:
                times.setdefault(name, []).append(seconds)
        # of the last dlrecipe run: the same data and batch size
        steps = steps_per_epoch(args.epochs)
        seconds = lightning_loop(CASE, args.epochs, "cpu") * steps
        with_idle = lightning_loop(CASE, args.epochs, "cpu", idle_callbacks=IDLE) * steps
        more_logged = lightning_loop(CASE, args.epochs, "cpu", logged=LOGGED) * steps
        if repeat:
            bare.append(seconds)
            idle.append(with_idle)
            logging.append(more_logged)
    ms = {key: statistics.median(v) * 1e3 for key, v in times.items()}
    full = ms["everything on"]
    steps = steps_per_epoch(args.epochs)
    print(f"case {list(CASES)[args.case - 1]}; torch threads {torch.get_num_threads()}, "
          f"clock {args.clock}, epochs {args.epochs}, repeats {args.repeats}")  # fmt: skip
    print(f"everything on: {full:.1f} ms an epoch ({full / steps:.2f} ms a step, {steps:.0f} steps); "
          f"bare Lightning {statistics.median(bare) * 1e3:.1f} ms")  # fmt: skip
    dispatch = (statistics.median(idle) - statistics.median(bare)) * 1e3
    print(f"bare Lightning with {IDLE} callbacks that do nothing: {dispatch:+.2f} ms an epoch "
          f"({dispatch / steps / IDLE * 1e3:.1f} us a step per callback: Lightning's hook dispatch)")  # fmt: skip
    per_key = (statistics.median(logging) - statistics.median(bare)) * 1e3 / (LOGGED - 1)
    print(f"bare Lightning logging {LOGGED} values an epoch instead of 1: {per_key:+.2f} ms an "
          "epoch per value (Lightning's self.log and its epoch-end reduction)")  # fmt: skip
    print(f"{'part switched off':28s} {'saves ms/epoch':>14s}")
    for name in list(variants)[1:]:
        print(f"{name:28s} {full - ms[name]:14.2f}")
    seconds_per_epoch([], args.epochs, ("+trainer.profiler._target_=bench_epoch_cost.HookTimes",))
    hooks, epochs = HookTimes.last, args.epochs - 1
    print(f"CPU time inside hooks (everything on, {epochs} epochs): ms/epoch, calls/epoch, us/call")
    for action, seconds in hooks.seconds.most_common(25):
        calls = hooks.calls[action]
        print(f"{seconds / epochs * 1e3:8.3f} {calls / epochs:6.1f} {seconds / calls * 1e6:9.1f}  "
              f"{action[:110]}")  # fmt: skip
    ours, per_step = _by_hook(hooks), steps * epochs
    StepTimer.last = {}  # HookTimes counts from the bare run's own second epoch
    lightning_loop(CASE, args.epochs, "cpu", profiler=HookTimes())
    bare_hooks = _by_hook(HookTimes.last)
    print(
        "dlrecipe minus bare Lightning, CPU us per training step, per hook (|difference| >= 2 us):"
    )
    rows = sorted(((ours[k] - bare_hooks[k]) / per_step * 1e6, k) for k in ours | bare_hooks)
    for diff, action in reversed(rows):
        if abs(diff) >= 2:
            print(f"{diff:9.1f}  {action[:100]}")


def _by_hook(times: HookTimes) -> collections.Counter:
    """Seconds per hook, named alike on both sides: no callback state keys, one module name."""
    named: collections.Counter = collections.Counter()
    for action, seconds in times.seconds.items():
        named[re.sub(r"\{.*\}", "", action).replace("Minimal", "LitModel")] += seconds
    return named


if __name__ == "__main__":
    main()
