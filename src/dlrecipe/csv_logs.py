"""The CSV logger's files of one run, across resumes: each resumed fit writes a new version.

    python -c "from dlrecipe.csv_logs import read_metrics; print(read_metrics('outputs/train/<date>/<time>/csv'))"

A fresh run logs to <run dir>/csv/metrics.csv (conf/logger/csv.yaml, version ""). Lightning's
CSV writer deletes an existing metrics.csv when it starts, so a resumed run must not write
there: it gets a new Lightning version (csv/version_0/metrics.csv, then version_1, ...), and
`read_metrics` reads the versions back in order as one table. Nothing written before is lost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CSV_TARGETS = ("CSVLogger",)  # lightning.pytorch.loggers.CSVLogger, also the pytorch_lightning one


def is_csv_logger(config: Any) -> bool:
    return str(config.get("_target_", "")).rsplit(".", 1)[-1] in CSV_TARGETS


def keeps_earlier_metrics(config: Any) -> dict[str, Any]:
    """Extra arguments for a CSV logger config: a new version when its metrics.csv exists.

    `version=None` is Lightning's own numbering (the next free version_N under save_dir/name).
    """
    if not is_csv_logger(config):
        return {}
    version = config.get("version")
    folder = Path(str(config.get("save_dir", "."))) / str(config.get("name", "lightning_logs"))
    if isinstance(version, str):  # "" (the run directory is unique): no version sub-folder
        folder = folder / version
    elif version is not None:
        folder = folder / f"version_{version}"
    return {"version": None} if (folder / "metrics.csv").is_file() else {}


def metrics_files(csv_dir: str | Path) -> list[Path]:
    """csv_dir/metrics.csv, then csv_dir/version_<N>/metrics.csv by N: the order they were written."""
    root = Path(csv_dir)
    versions = []
    for sub in root.glob("version_*"):
        number = sub.name.removeprefix("version_")
        if number.isdigit() and (sub / "metrics.csv").is_file():
            versions.append((int(number), sub / "metrics.csv"))
    first = [root / "metrics.csv"] if (root / "metrics.csv").is_file() else []
    return first + [path for _, path in sorted(versions)]


def read_metrics(csv_dir: str | Path) -> Any:
    """Every row the CSV logger wrote for one run, across its resumes, as one pandas DataFrame."""
    import pandas as pd  # lazily: training itself never reads these files back

    tables = []
    for path in metrics_files(csv_dir):
        try:
            tables.append(pd.read_csv(path))
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            continue  # a run killed before its first row: nothing to read
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
