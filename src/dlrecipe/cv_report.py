"""Aggregate fold runs into one cross-validation summary.

    python -m dlrecipe.train -m experiment=wine_mlp data/split=stratified_kfold data.split.fold=0,1,2,3,4
    python -m dlrecipe.cv_report outputs/wine_mlp/multiruns/<date>/<time>

Writes cv_summary.json / .csv and oof_predictions.csv into the given directory and prints the
same table a single K-fold run prints.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dlrecipe.cv.summary import aggregate, fold_run_dirs
from dlrecipe.edge import ArgumentParser, user_error
from dlrecipe.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m dlrecipe.cv_report", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "run_dir", type=Path, help="a K-fold run or a multirun over data.split.fold"
    )
    parser.add_argument(
        "--metric", default=None, help="the metric to average (default: the runs' optimized_metric)"
    )
    args = parser.parse_args(argv)
    try:
        if not args.run_dir.is_dir():
            raise ConfigError(f"{args.run_dir} is not a directory")
        summary = aggregate(fold_run_dirs(args.run_dir), args.run_dir, args.metric)
    except Exception as err:  # a user's mistake: one line, exit 2; a bug: its traceback
        return user_error(err, argv)
    summary.print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
