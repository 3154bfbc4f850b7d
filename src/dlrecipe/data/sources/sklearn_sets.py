"""scikit-learn's bundled data sets: they ship inside the package, so they work offline.

python -m dlrecipe.train data=wine model=mlp
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn import datasets

from dlrecipe.data.sources.base import SourceData
from dlrecipe.errors import ConfigError
from dlrecipe.tasks import Binary, Multiclass, Regression, Task

# name -> (loader, task). digits is also an image set: 8x8 pixels with values 0..16.
_SETS: dict[str, tuple[str, type[Task]]] = {
    "digits": ("load_digits", Multiclass),
    "breast_cancer": ("load_breast_cancer", Binary),
    "wine": ("load_wine", Multiclass),
    "iris": ("load_iris", Multiclass),
    "diabetes": ("load_diabetes", Regression),
}


def load_sklearn(name: str) -> SourceData:
    if name not in _SETS:
        raise ConfigError(
            f"data.source.name={name!r} is not a bundled set; choose one of {sorted(_SETS)}"
        )
    loader, task = _SETS[name]
    bunch = getattr(datasets, loader)()
    x = torch.as_tensor(np.asarray(bunch.data, dtype=np.float32))
    if name == "digits":
        x = (x / 16.0).reshape(-1, 1, 8, 8)  # pixel intensities 0..16 -> [0, 1] images
    if not task.has_classes:
        return SourceData(
            x,
            torch.as_tensor(bunch.target, dtype=torch.float32),
            task.name,
            feature_names=list(bunch.feature_names),
        )
    names = [str(n) for n in getattr(bunch, "target_names", np.unique(bunch.target))]
    return SourceData(
        x,
        torch.as_tensor(bunch.target, dtype=torch.long),
        task.name,
        class_names=names,
        feature_names=[str(f) for f in getattr(bunch, "feature_names", [])],
    )
