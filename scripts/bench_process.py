"""The default `make train` run against scripts/raw_digits.py, both as whole processes.

    .venv/bin/python scripts/bench_process.py [--repeats 3] [-- extra dlrecipe overrides]

Each side runs in a fresh subprocess, alternating: `python -m dlrecipe.train` with its defaults
(digits CNN, checkpoints, early stopping, CSV logger, report) and the plain PyTorch script doing
the same job. Printed: each side's wall time (process start to exit) and test accuracy, the
ratio of the medians (goal: at most 1.6x), and start-up to the first optimizer step for each
(goal: dlrecipe within 1.5 s of the raw script). dlrecipe's first step is stamped by a callback
added with a `+callbacks.` override (FirstStepStamp below), so nothing in the package is
special-cased. On a machine shared with other jobs single runs vary: read the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAMP = "FIRST_STEP_AT"
HERE = Path(__file__).resolve().parent


class FirstStepStamp:
    """dlrecipe's side: prints the wall clock after the first optimizer step, then trains on."""

    def __new__(cls):
        import lightning.pytorch as pl

        class _Stamp(pl.Callback):
            def __init__(self):
                self.done = False

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                if not self.done:  # Lightning calls this after the batch's optimizer step
                    self.done = True
                    print(f"{STAMP} {time.time():.6f}", file=sys.stderr, flush=True)

        return _Stamp()


def run(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, seconds to the first step, stdout) of one child process."""
    start = time.time()
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=HERE.parent)
    wall = time.time() - start
    if result.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{result.stderr[-3000:]}")
    stamps = [line for line in (result.stdout + result.stderr).splitlines() if STAMP in line]
    stamp = float(stamps[0].split(STAMP, 1)[1].split()[0]) if stamps else None
    if stamp is None:  # the raw script puts it in its JSON line
        stamp = json.loads(result.stdout.strip().splitlines()[-1])["first_step_at"]
    return wall, stamp - start, result.stdout


def raw_side(env: dict[str, str]) -> tuple[float, float, float]:
    wall, first, out = run([sys.executable, str(HERE / "raw_digits.py")], env)
    return wall, first, json.loads(out.strip().splitlines()[-1])["test_acc"]


def dlrecipe_side(env: dict[str, str], extra: list[str]) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable, "-m", "dlrecipe.train", f"hydra.run.dir={out}",
            "+callbacks.first_step._target_=bench_process.FirstStepStamp", *extra,
        ]  # fmt: skip
        wall, first, _ = run(command, env)
        summary = json.loads((Path(out) / "summary.json").read_text())
    return wall, first, float(summary["test_metrics"]["test/acc"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("overrides", nargs="*", help="extra dlrecipe overrides (after --)")
    args = parser.parse_args()
    paths = [str(HERE), os.environ.get("PYTHONPATH", "")]  # FirstStepStamp's module
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    env.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    raw, ours = [], []
    for _ in range(args.repeats):  # alternate, so drifts in machine load hit both
        raw.append(raw_side(env))
        ours.append(dlrecipe_side(env, args.overrides))
    for name, runs in (("raw script", raw), ("dlrecipe", ours)):
        walls = " ".join(f"{w:.1f}" for w, _, _ in runs)
        print(
            f"{name:10s} wall {statistics.median(w for w, _, _ in runs):6.1f} s  first step "
            f"{statistics.median(f for _, f, _ in runs):5.2f} s  test acc "
            f"{statistics.median(a for _, _, a in runs):.4f}  (walls: {walls})"
        )
    ratio = statistics.median(w for w, _, _ in ours) / statistics.median(w for w, _, _ in raw)
    startup = statistics.median(f for _, f, _ in ours) - statistics.median(f for _, f, _ in raw)
    print(f"process_ratio {ratio:.2f} (goal <= 1.60) startup_diff_s {startup:+.2f} (goal <= 1.50)")


if __name__ == "__main__":
    main()
