"""Where dlrecipe's own time goes on the MLP case: each part switched off in turn, ms per epoch.

    .venv/bin/python scripts/bench_epoch_cost.py --threads 1 --clock cpu [--repeats 3] [--epochs 30]

Trains make bench's breast_cancer MLP case (batch 32, 12 steps an epoch, dlrecipe's side of
scripts/bench_throughput.py) with everything on, then with one part off at a time (a callback
set to null, the CSV logger off, or one of the two callbacks train.py always adds), then with
all of them off, and bare Lightning on the same batches. The variants alternate and repeat in
one process; medians count. Each runs twice: with the full 12-step epochs and with
`trainer.limit_train_batches=4`, so that a part's cost splits into what it costs per epoch
(checkpoint writes, a history row) and per training step (hooks dispatched every batch):

    per step  = (saving at 12 steps - saving at 4 steps) / 8
    per epoch = saving at 12 steps - 12 * per step

Small parts are within the noise of a shared machine; the checkpoint rows are not.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile

import torch

import benchlib
import dlrecipe.train as train_module
from bench_throughput import CASES, COMMON, lightning_loop
from benchlib import StepTimer
from dlrecipe.builders import compose

CASE = [*COMMON, *CASES["breast_cancer MLP, batch 32"], "trainer.accelerator=cpu"]
SHORT = 4  # training batches per epoch of the short runs

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


def seconds_per_epoch(off: list[str], epochs: int, steps: int | None) -> float:
    """Steady-state seconds per epoch (epochs 2..end) with the parts in `off` switched off."""
    overrides = [o for o in off if "=" in o]
    limit = [f"trainer.limit_train_batches={steps}"] if steps else []
    with tempfile.TemporaryDirectory() as out, without([o for o in off if "=" not in o]):
        cfg = compose([
            *benchlib.QUIET, f"paths.output_dir={out}", *CASE, f"trainer.max_epochs={epochs}",
            *limit, "+callbacks.step_timer._target_=benchlib.StepTimer", *overrides,
        ])  # fmt: skip
        with contextlib.redirect_stdout(io.StringIO()):
            train_module.train(cfg)
    return StepTimer.last["seconds"] / (epochs - 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--clock", choices=sorted(benchlib.CLOCKS), default="wall")
    args = parser.parse_args()
    benchlib.set_clock(args.clock)
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = {"everything on": [], **PARTS}
    # No ModelCheckpoint left: without this Lightning would add its own default one.
    variants["all of the above off"] = [
        *(o for off in PARTS.values() for o in off),
        "trainer.enable_checkpointing=false",
    ]
    times: dict[tuple[str, int | None], list[float]] = {}
    bare: list[float] = []
    for repeat in range(args.repeats + 1):  # the first round warms up and is not counted
        for name, off in variants.items():
            for steps in (None, SHORT):
                seconds = seconds_per_epoch(off, args.epochs, steps)
                if repeat:
                    times.setdefault((name, steps), []).append(seconds)
        seconds = lightning_loop(CASE, args.epochs, "cpu") * 12  # 12 steps an epoch
        if repeat:
            bare.append(seconds)
    ms = {key: statistics.median(v) * 1e3 for key, v in times.items()}
    full, short = ms[("everything on", None)], ms[("everything on", SHORT)]
    print(f"torch threads {torch.get_num_threads()}, clock {args.clock}, epochs {args.epochs}, "
          f"repeats {args.repeats}")  # fmt: skip
    print(f"everything on: {full:.1f} ms an epoch ({full / 12:.2f} ms a step, 12 steps); "
          f"bare Lightning {statistics.median(bare) * 1e3:.1f} ms")  # fmt: skip
    print(f"{'part switched off':28s} {'saves ms/epoch':>14s} {'per epoch ms':>12s} "
          f"{'per step us':>11s}")  # fmt: skip
    for name in variants:
        if name == "everything on":
            continue
        saved_full = full - ms[(name, None)]
        saved_short = short - ms[(name, SHORT)]
        per_step = (saved_full - saved_short) / (12 - SHORT)
        per_epoch = saved_full - 12 * per_step
        print(f"{name:28s} {saved_full:14.2f} {per_epoch:12.2f} {per_step * 1e3:11.0f}")


if __name__ == "__main__":
    main()
