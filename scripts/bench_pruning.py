"""What does pruning save? The same digits sweep with the median pruner and with none.

    .venv/bin/python scripts/bench_pruning.py [--trials 16] [--epochs 10] [--seed 0]

Runs hparams_search=digits_lr_bs twice, same sampler seed and budget, and prints the training
epochs each sweep spent (summed over trials, from their history.csv), the best validation
loss each found, and the ratio (goal: at least 40 % fewer epochs, best value within noise).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def run_sweep(out: Path, pruner: str, trials: int, epochs: int, seed: int) -> tuple[int, float]:
    args = [
        sys.executable, "-m", "dlrecipe.train", "hparams_search=digits_lr_bs", f"hydra/sweeper/pruner={pruner}",
        f"hydra.sweeper.n_trials={trials}", f"hydra.sweeper.sampler.seed={seed}", f"trainer.max_epochs={epochs}",
        "callbacks.early_stopping=null", "trainer.enable_progress_bar=false", "callbacks.progress_bar=null",
        "callbacks.model_summary=null", f"hydra.sweep.dir={out}",
    ]  # fmt: skip
    subprocess.run(args, check=True, capture_output=True, text=True)
    epochs_run = 0
    for history in out.glob("trial_*/history.csv"):
        with history.open() as f:
            epochs_run += sum(1 for _ in csv.DictReader(f))
    best = json.loads((out / "sweep_summary.json").read_text())["best_value"]
    return epochs_run, best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        full = run_sweep(Path(tmp) / "none", "none", args.trials, args.epochs, args.seed)
        pruned = run_sweep(Path(tmp) / "median", "median", args.trials, args.epochs, args.seed)
    print(f"{'pruner':8s} {'epochs':>7s} {'best val/loss':>14s}")
    print(f"{'none':8s} {full[0]:7d} {full[1]:14.4f}")
    print(f"{'median':8s} {pruned[0]:7d} {pruned[1]:14.4f}")
    print(
        f"epochs with pruning / without: {pruned[0] / full[0]:.2f} ({1 - pruned[0] / full[0]:.0%} fewer)"
    )


if __name__ == "__main__":
    main()
