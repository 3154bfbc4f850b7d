"""Your own table: one CSV file, one target column, the task inferred from the target.

    python -m dlrecipe.train data=csv data.source.path=my_table.csv data.source.target=price

Float target -> regression, two values -> binary, a few labels -> multiclass; `data.source.task=...`
overrides. String feature columns are one-hot encoded. Missing values and ±inf in the columns
used are an error naming the columns and rows (imputing belongs to your preprocessing, where it
can be fitted on training rows only); `data.source.non_finite=drop` leaves those rows out, with a note.
An empty file, or one without data rows, is refused naming data.source.path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dlrecipe.data.info import Task, infer_task
from dlrecipe.data.sources.base import SourceData, encode_labels
from dlrecipe.errors import ConfigError
from dlrecipe.tasks import Binary, Multiclass, Regression, task_named

# The tasks one target column can hold (data.source.task=...).
TASKS: tuple[str, ...] = (Regression.name, Binary.name, Multiclass.name)


def read_csv(path: str, key: str = "data.source.path") -> pd.DataFrame:
    """The table at `path`; a missing, empty or unparsable file is a ConfigError naming `key`."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"{key}={path!r} does not exist. Fix: {key}=<an existing CSV file>")
    try:
        frame = pd.read_csv(file)
    except pd.errors.EmptyDataError:  # a 0-byte file (or only blank lines): no header to read
        raise ConfigError(
            f"{key}={path!r} is empty (no header row); give a CSV with a header and data rows"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        reason = str(err).strip().splitlines()[-1][:200]
        raise ConfigError(
            f"{key}={path!r} is not a readable CSV ({reason}); fix the file or point {key} at the CSV"
        ) from None
    if frame.empty:
        raise ConfigError(
            f"{key}={path!r} has a header but no data rows; give a CSV with data rows"
        )
    return frame


NON_FINITE = ("refuse", "drop")


def unusable_rows(frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, dict[str, str]]:
    """Rows with a missing value, or ±inf in a numeric column, among `columns`; per-column counts."""
    bad = np.zeros(len(frame), dtype=bool)
    counts: dict[str, str] = {}
    for column in dict.fromkeys(columns):  # a column named twice is counted once
        values = frame[column]
        missing = values.isna().to_numpy()
        infinite = np.zeros(len(frame), dtype=bool)
        if values.dtype.kind in "iuf":
            infinite = np.isinf(values.to_numpy(dtype=np.float64, na_value=np.nan))
        if missing.any() or infinite.any():
            kinds = [f"{int(m.sum())} {what}" for m, what in ((missing, "NaN"), (infinite, "inf"))
                     if m.any()]  # fmt: skip
            counts[column] = ", ".join(kinds)
            bad |= missing | infinite
    return bad, counts


def drop_unusable(
    frame: pd.DataFrame, columns: list[str], path: str, non_finite: str
) -> tuple[pd.DataFrame, list[str]]:
    """Refuse rows with NaN / ±inf in the used columns (naming them), or drop them with a note.

    Left in, one inf makes the loss inf, the weights NaN and every metric NaN, with exit 0.
    """
    if non_finite not in NON_FINITE:
        raise ConfigError(
            f"data.source.non_finite={non_finite!r}: choose one of {list(NON_FINITE)}"
        )
    bad, counts = unusable_rows(frame, columns)
    n = int(bad.sum())
    if not n:
        return frame, []
    detail = "; ".join(f"{c!r}: {k}" for c, k in counts.items())
    lines = ", ".join(str(i + 2) for i in np.flatnonzero(bad)[:5])  # +2: header, 1-based
    if non_finite == "refuse" or n == len(frame):
        fix = (
            "every row has one, so fix the file or leave those columns out with data.source.features=[...]"
            if n == len(frame)
            else "fix the file, or set data.source.non_finite=drop to train without those rows"
        )
        raise ConfigError(
            f"data.source.path={path!r}: columns {list(counts)} have missing values or ±inf in {n} of "
            f"{len(frame)} rows ({detail}; file lines {lines}{', ...' if n > 5 else ''}); {fix}"
        )
    note = (
        f"data.source.non_finite=drop: left out {n} of {len(frame)} rows of {path} with NaN or ±inf "
        f"({detail})"
    )
    return frame.loc[~bad].reset_index(drop=True), [note]


def feature_matrix(frame: pd.DataFrame, feature_names: list[str] | None = None) -> pd.DataFrame:
    """Numeric features with string columns one-hot encoded; `feature_names` aligns a new file."""
    encoded = pd.get_dummies(frame, dtype=np.float32)
    if feature_names is not None:
        encoded = encoded.reindex(columns=feature_names, fill_value=0.0)
    missing = [c for c in encoded.columns if encoded[c].isna().any()]
    if missing:
        raise ConfigError(
            f"columns {missing} have missing values; fill or drop them first, or leave them out "
            "with data.source.features=[...]"
        )
    return encoded.astype(np.float32)


def load_csv(
    path: str,
    target: str,
    features: list[str] | None = None,
    task: Task | None = None,
    groups: str | None = None,
    non_finite: str = "refuse",
) -> SourceData:
    frame = read_csv(path)
    if target not in frame.columns:
        raise ConfigError(
            f"data.source.target={target!r} is not a column of {path}; columns are {list(frame.columns)}"
        )
    if groups is not None and groups not in frame.columns:
        raise ConfigError(
            f"data.source.groups={groups!r} is not a column of {path}; columns are {list(frame.columns)}"
        )
    features = (
        list(features) if features else [c for c in frame.columns if c not in (target, groups)]
    )
    unknown = [f for f in features if f not in frame.columns]
    if unknown:
        raise ConfigError(
            f"data.source.features has unknown columns {unknown}; columns are {list(frame.columns)}"
        )
    if task is not None and task not in TASKS:
        raise ConfigError(
            f"data.source.task={task!r}: choose one of {list(TASKS)} or null to infer it"
        )
    frame, notes = drop_unusable(frame, [target, *features], path, non_finite)
    labels = frame[target].to_numpy()
    if len(pd.unique(frame[target])) < 2:
        raise ConfigError(f"target column {target!r} has a single value; there is nothing to learn")
    task = task or infer_task(labels)
    if not task_named(task).has_classes and labels.dtype.kind not in "iuf":
        raise ConfigError(
            f"data.source.task={task} needs a numeric target; {target!r} holds {labels.dtype}"
        )
    x = feature_matrix(frame[features])
    y, class_names = encode_labels(labels, task)
    if task == Binary.name and len(class_names) != 2:
        raise ConfigError(
            f"data.source.task=binary but {target!r} has {len(class_names)} distinct values"
        )
    return SourceData(
        torch.as_tensor(x.to_numpy().copy()),
        y,
        task,
        class_names=class_names,
        feature_names=list(x.columns),
        groups=None if groups is None else frame[groups].to_numpy(),
        notes=notes,
    )
