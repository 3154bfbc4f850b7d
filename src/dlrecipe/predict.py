"""Predictions for new inputs: a CSV with the training features, or a folder of images.

    python -m dlrecipe.eval ckpt_path=<run>/checkpoints/last.ckpt predict.input=new_rows.csv

Inputs go through the same steps as in training (feature encoding, image size and channels,
the checkpoint's normalization statistics). The output has one row per input: an id, the
prediction and, for classification, one probability column per class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dlrecipe.data.datamodule import DataModule
from dlrecipe.data.info import DataInfo
from dlrecipe.data.sources.csv_table import feature_matrix, unusable_rows
from dlrecipe.data.sources.image_folder import IMAGE_SUFFIXES, read_image
from dlrecipe.errors import ConfigError
from dlrecipe.models.module import LitModel


def read_inputs(
    source: str, datamodule: DataModule
) -> tuple[torch.Tensor, list[str], pd.Series | None]:
    """(inputs, ids, true targets if the file has them) in the layout the model was trained on."""
    info, path = datamodule.info, Path(source).expanduser()
    if not path.exists():
        raise ConfigError(
            f"predict.input={source!r} does not exist. Fix: predict.input=<a CSV file, or a "
            "folder of images for an image model>"
        )
    if path.is_dir():
        if not info.is_image:
            raise ConfigError(
                f"predict.input={source!r} is a folder, but this model was trained on a table"
            )
        files = sorted(f for f in path.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ConfigError(f"predict.input={source!r} holds no images")
        channels, height, width = info.input_shape
        mode = "L" if channels == 1 else "RGB"
        images = torch.stack([read_image(f, (height, width), mode) for f in files])
        return images, [str(f) for f in files], None
    if info.is_image:
        raise ConfigError(f"predict.input={source!r}: this model needs a folder of images")
    frame = _read_rows(path, source)
    names = datamodule.data.feature_names
    target = datamodule.source_args.get("target")
    encoded = set(pd.get_dummies(frame).columns)
    text_columns = [c for c in frame.columns if frame[c].dtype.kind in "OSUb"]
    # A one-hot column may be absent when its category simply does not occur in the new rows;
    # any other training feature must be there, or predictions would silently use zeros.
    missing = [
        n
        for n in names
        if n not in encoded and not any(n.startswith(f"{c}_") for c in text_columns)
    ]
    if missing:
        raise ConfigError(
            f"predict.input={source!r} lacks the training features {missing[:8]}; give the same columns as the training data"
        )
    features = frame.drop(columns=[target]) if target in frame.columns else frame
    used = [c for c in features.columns if c in names or any(n.startswith(f"{c}_") for n in names)]
    bad, counts = unusable_rows(features, used)
    if bad.any():  # an inf or NaN input gives a garbage prediction that looks like any other
        lines = ", ".join(str(i + 2) for i in np.flatnonzero(bad)[:5])  # +2: header, 1-based
        raise ConfigError(
            f"predict.input={source!r}: columns {list(counts)} have missing values or ±inf in "
            f"{int(bad.sum())} of {len(frame)} rows (file lines {lines}); fix or leave out those rows"
        )
    x = torch.as_tensor(feature_matrix(features, names).to_numpy())
    truth = frame[target] if target in frame.columns else None
    return x, [str(i) for i in range(len(frame))], truth


def _read_rows(path: Path, source: str) -> pd.DataFrame:
    """The new rows; an empty or unparsable file is named as predict.input, not data.source.path."""
    try:
        frame = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"predict.input={source!r} is not a readable CSV ({' '.join(str(err).split())}); "
            "give a comma-separated file with the training columns"
        ) from None
    if frame.empty:
        raise ConfigError(f"predict.input={source!r} has no rows to predict")
    return frame


@torch.no_grad()
def predict_batches(model: LitModel, datamodule: DataModule, batches) -> torch.Tensor:
    """Probabilities (classification) or values (regression) for raw batches of inputs."""
    model.eval()
    device = next(model.parameters()).device
    outputs = [
        model.task.predict(model(datamodule.prepare_inputs(x.to(device)))).cpu() for x in batches
    ]
    return torch.cat(outputs)


def prediction_frame(info: DataInfo, probs: torch.Tensor, ids: list) -> pd.DataFrame:
    """One row per sample: id, prediction (class name or value), one probability per class."""
    table = pd.DataFrame({"id": ids})
    for column, values in info.task_obj.prediction_columns(probs, info.class_names).items():
        table[column] = values
    return table


def predict_table(
    model: LitModel, datamodule: DataModule, source: str, batch_size: int = 1024
) -> pd.DataFrame:
    inputs, ids, truth = read_inputs(source, datamodule)
    batches = (inputs[i : i + batch_size] for i in range(0, len(inputs), batch_size))
    table = prediction_frame(model.info, predict_batches(model, datamodule, batches), ids)
    if truth is not None:
        table["target"] = truth.to_numpy()
    return table


def split_predictions(model: LitModel, datamodule: DataModule, indices: np.ndarray) -> pd.DataFrame:
    """Predictions for samples of the data set itself (a fold's validation or test part)."""
    targets = datamodule.data.targets[torch.as_tensor(indices)]
    batches = (x for x, _ in datamodule.batches(indices))
    table = prediction_frame(model.info, predict_batches(model, datamodule, batches), list(indices))
    table.insert(1, "target", model.task.target_column(targets, model.info.class_names))
    return table.rename(columns={"id": "index"})
