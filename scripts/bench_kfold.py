"""How much does K-fold cost over one hold-out run? (goal: 5 folds <= 5.3x one run)

    .venv/bin/python scripts/bench_kfold.py [--epochs 10] [--repeats 2]

Runs, in one process and alternating, the digits CNN with a hold-out split and with 5-fold
stratified CV, both for the same number of epochs (early stopping off, so the work per fit is
equal), and prints the wall time of each and their ratio. The data is loaded once for all
folds; what remains per fold is the fit itself plus a Trainer and a model.
"""

from __future__ import annotations

import argparse
import statistics

from benchlib import timed_run


def timed(overrides: list[str]) -> float:
    return timed_run(["callbacks.early_stopping=null", *overrides])[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    # Equal training data per fit: hold-out val_frac = 1/5 of the non-test part, like 5-fold.
    common = [f"trainer.max_epochs={args.epochs}", "data.split.test_frac=0.15"]
    holdout = [*common, "data.split.val_frac=0.17"]
    kfold = [*common, "data/split=stratified_kfold", "data.split.k=5"]
    timed(holdout)  # warm-up: imports, first-call allocations
    one, five = [], []
    for _ in range(args.repeats):
        one.append(timed(holdout))
        five.append(timed(kfold))
    a, b = statistics.median(one), statistics.median(five)
    print(f"hold-out run      {a:6.2f} s (median of {args.repeats})")
    print(f"5-fold CV         {b:6.2f} s")
    print(f"ratio             {b / a:6.2f}x  (goal <= 5.3x)")


if __name__ == "__main__":
    main()
