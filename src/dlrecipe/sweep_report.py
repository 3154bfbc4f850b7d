"""Rewrite a sweep's summary, table and plots from its study (also while the sweep still runs).

python -m dlrecipe.sweep_report outputs/sweep/sweeps/digits_lr_bs
python -m dlrecipe.sweep_report <dir> --storage postgresql+psycopg://host/db --study digits_lr_bs
DLRECIPE_STORAGE=postgresql+psycopg://user:pw@host/db python -m dlrecipe.sweep_report <dir>   # a password
"""

from __future__ import annotations

import sys
from pathlib import Path

from dlrecipe.edge import ArgumentParser, user_error
from dlrecipe.errors import ConfigError, read_json
from dlrecipe.extras import require


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m dlrecipe.sweep_report", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument(
        "--storage",
        default=None,
        help="default: the sweep's own storage (sweep_summary.json or study.journal)",
    )
    parser.add_argument(
        "--study", default=None, help="default: the study recorded in the sweep directory"
    )
    args = parser.parse_args(argv)
    try:  # without the [tune] extra: one line naming it, exit 2
        require("optuna", "dlrecipe-sweep-report")
    except ConfigError as err:
        return user_error(err, argv)
    import optuna

    from dlrecipe.sweep.report import write_sweep_report
    from dlrecipe.sweep.storage import job_storage, make_storage, resolve_storage

    try:
        saved = args.sweep_dir / "sweep_summary.json"
        known = read_json(saved) if saved.is_file() else {}
        url = args.storage or known.get("storage") or str(args.sweep_dir / "study.journal")
        # The summary keeps the storage as shown (password hidden): $DLRECIPE_STORAGE has the real one.
        spec = job_storage(str(url)) if not args.storage and url == known.get("storage") else None
        spec = spec or resolve_storage(str(url), args.sweep_dir / "study.journal", "--storage")
        url = spec.shown
        if "://" not in url and not Path(url).is_file():
            raise ConfigError(f"no study storage at {url}; pass --storage")
        storage = make_storage(spec)
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        name = args.study or known.get("study_name") or (names[0] if len(names) == 1 else None)
        if name not in names:
            raise ConfigError(f"study {name!r} is not in {url}; studies there: {names}")
        study = optuna.load_study(study_name=name, storage=storage)
        write_sweep_report(study, args.sweep_dir, known.get("fixed_overrides", []), url)
    except Exception as err:  # a user's mistake: one line, exit 2; a bug: its traceback
        return user_error(err, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
