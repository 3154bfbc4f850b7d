"""Your own table: one CSV file, one target column, the task inferred from the target.

    python -m dlrecipe.train data=csv data.path=my_table.csv data.target=price

Float target -> regression, two values -> binary, a few labels -> multiclass; `data.task=...`
overrides. String feature columns are one-hot encoded; missing values are an error (imputing
them belongs to your preprocessing, where it can be fitted on training rows only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dlrecipe.data.info import TASKS, Task, infer_task
from dlrecipe.data.sources.base import SourceData, encode_labels
from dlrecipe.errors import ConfigError


def read_csv(path: str) -> pd.DataFrame:
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(
            f"data.path={path!r} does not exist. Fix: data.path=<an existing CSV file>"
        )
    return pd.read_csv(file)


def feature_matrix(frame: pd.DataFrame, feature_names: list[str] | None = None) -> pd.DataFrame:
    """Numeric features with string columns one-hot encoded; `feature_names` aligns a new file."""
    encoded = pd.get_dummies(frame, dtype=np.float32)
    if feature_names is not None:
        encoded = encoded.reindex(columns=feature_names, fill_value=0.0)
    missing = [c for c in encoded.columns if encoded[c].isna().any()]
    if missing:
        raise ConfigError(
            f"columns {missing} have missing values; fill or drop them first, or leave them out "
            "with data.features=[...]"
        )
    return encoded.astype(np.float32)


def load_csv(
    path: str,
    target: str,
    features: list[str] | None = None,
    task: Task | None = None,
    groups: str | None = None,
) -> SourceData:
    frame = read_csv(path)
    if target not in frame.columns:
        raise ConfigError(
            f"data.target={target!r} is not a column of {path}; columns are {list(frame.columns)}"
        )
    if groups is not None and groups not in frame.columns:
        raise ConfigError(
            f"data.groups={groups!r} is not a column of {path}; columns are {list(frame.columns)}"
        )
    features = (
        list(features) if features else [c for c in frame.columns if c not in (target, groups)]
    )
    unknown = [f for f in features if f not in frame.columns]
    if unknown:
        raise ConfigError(
            f"data.features has unknown columns {unknown}; columns are {list(frame.columns)}"
        )
    if task is not None and task not in TASKS:
        raise ConfigError(f"data.task={task!r}: choose one of {list(TASKS)} or null to infer it")
    labels = frame[target].to_numpy()
    if pd.isna(frame[target]).any():
        raise ConfigError(f"target column {target!r} has missing values; drop those rows first")
    if len(pd.unique(frame[target])) < 2:
        raise ConfigError(f"target column {target!r} has a single value; there is nothing to learn")
    missing = [c for c in features if frame[c].isna().any()]
    if missing:
        raise ConfigError(
            f"columns {missing} have missing values; fill or drop them first, or leave them out with data.features=[...]"
        )
    task = task or infer_task(labels)
    if task == "regression" and labels.dtype.kind not in "iuf":
        raise ConfigError(
            f"data.task=regression needs a numeric target; {target!r} holds {labels.dtype}"
        )
    x = feature_matrix(frame[features])
    y, class_names = encode_labels(labels, task)
    if task == "binary" and len(class_names) != 2:
        raise ConfigError(f"data.task=binary but {target!r} has {len(class_names)} distinct values")
    return SourceData(
        torch.as_tensor(x.to_numpy().copy()),
        y,
        task,
        class_names=class_names,
        feature_names=list(x.columns),
        groups=None if groups is None else frame[groups].to_numpy(),
    )
