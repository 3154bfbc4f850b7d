"""What the report costs in a default run: its seconds against the run's wall time.

    .venv/bin/python scripts/bench_report.py [--repeats 3] [ARGS...]    # ARGS: train overrides

Runs `python -m dlrecipe.train` (the digits CNN defaults plus ARGS) as a user would, in a fresh
process each time, and prints the process's wall time, the summary's total_seconds (start of
the fit chain to the end, the report included) and report_seconds, and the report's share of
each. The last line reads: report_s, total_s, wall_s (medians) and the shares of total and wall.
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

ROOT = Path(__file__).resolve().parents[1]


def one_run(extra: list[str]) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        command = [sys.executable, "-m", "dlrecipe.train", f"hydra.run.dir={run}",
                   "trainer.enable_progress_bar=false", *extra]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True,
                       env={**os.environ, "WANDB_MODE": "offline"})  # fmt: skip
        wall = time.perf_counter() - started
        summary = json.loads((run / "summary.json").read_text())
    return summary["report_seconds"], summary["total_seconds"], wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args, extra = parser.parse_known_args()
    rows = []
    for i in range(args.repeats):
        report, total, wall = one_run(extra)
        rows.append((report, total, wall))
        print(f"run {i + 1}: report {report:.2f} s, summary total {total:.2f} s "
              f"({report / total:.1%}), process wall {wall:.2f} s ({report / wall:.1%})")  # fmt: skip
    report, total, wall = (statistics.median(c) for c in zip(*rows, strict=True))
    print(f"report_s {report:.2f} total_s {total:.2f} wall_s {wall:.2f} "
          f"share_of_total {report / total:.3f} share_of_wall {report / wall:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
