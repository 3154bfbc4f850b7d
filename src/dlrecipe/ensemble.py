"""Evaluate and predict with a run directory: a K-fold run's fold ensemble, or a run's chosen model.

    python -m dlrecipe.eval ckpt_path=outputs/wine_mlp/<date>/<time>          # K-fold run dir
    python -m dlrecipe.eval ckpt_path=<K-fold run dir> predict.input=new_rows.csv

`ckpt_path` may name a run directory instead of a .ckpt file. A K-fold run directory (fold
sub-directories with a summary.json each) means its fold ensemble: every fold's best checkpoint
is restored with its own normalization, and the ensemble's output is the mean of the folds'
probabilities (classification) or values (regression), from which the predicted class follows.
Test metrics are the ensemble's when the folds share one test set (data.split.test=fixed, as
cv_summary's `ensemble` row). A single run's directory means its `model_to_use` (the refit
model after refit=true, else the best checkpoint). Paths read from a summary.json must lie
inside the directory they came from.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dlrecipe.data.info import DataInfo
from dlrecipe.errors import ConfigError
from dlrecipe.predict import prediction_frame


def _summary(folder: Path) -> dict:
    try:
        data = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        raise ConfigError(f"{folder / 'summary.json'} is not a readable run summary") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{folder / 'summary.json'} is not a run summary (no mapping inside)")
    return data


def _inside(folder: Path, stored: object, key: str) -> str:
    """A checkpoint path from folder/summary.json, refused unless it lies inside folder.

    Paths are stored as the run named them (absolute, or relative to where it ran); a run
    directory moved or copied since keeps working: the part below the stored run_dir is taken
    relative to where the folder is now.
    """
    if not isinstance(stored, str) or not stored:
        raise ConfigError(f"{folder / 'summary.json'} names no checkpoint ({key}); rerun training")
    path = Path(stored)
    old_dir = _summary(folder).get("run_dir")
    if isinstance(old_dir, str) and old_dir and path.is_relative_to(old_dir):  # abs. or relative
        path = folder / path.relative_to(old_dir)
    if not path.is_absolute():  # relative to where the run was started, or to its folder
        here = path.resolve()
        path = here if here.is_relative_to(folder.resolve()) else folder / path
    path = path.resolve()
    if not path.is_relative_to(folder.resolve()):
        raise ConfigError(
            f"{folder / 'summary.json'}: {key} points outside its run directory; refused"
        )
    return str(path)


def checkpoints_of(ckpt_path: str | Path) -> list[str]:
    """[the file] for a .ckpt; the fold best checkpoints for a K-fold run directory; a run
    directory's model_to_use otherwise."""
    path = Path(ckpt_path).expanduser()
    if not path.is_dir():
        return [str(ckpt_path)]
    folds = sorted(p.parent for p in path.glob("*/summary.json"))
    folds = [f for f in folds if _summary(f).get("fold")]
    if folds:
        diverged = [f.name for f in folds if _summary(f).get("status") == "diverged"]
        if diverged:
            raise ConfigError(
                f"ckpt_path={str(ckpt_path)!r}: fold run(s) {diverged} diverged, so there is no "
                "fold ensemble; rerun them"
            )
        return [_inside(f, _summary(f).get("best_checkpoint"), "best_checkpoint") for f in folds]
    if (path / "summary.json").is_file():
        summary = _summary(path)
        return [_inside(path, summary.get("model_to_use") or summary.get("best_checkpoint"),
                        "model_to_use")]  # fmt: skip
    raise ConfigError(
        f"ckpt_path={str(ckpt_path)!r} is a folder without a summary.json or fold runs; give a "
        ".ckpt file or a run directory of dlrecipe.train"
    )


def mean_table(tables: list[pd.DataFrame], info: DataInfo) -> pd.DataFrame:
    """The folds' prediction tables (same rows) averaged: probabilities or values, then the
    prediction from the averaged probabilities."""
    from dlrecipe.cv.summary import value_columns

    columns = value_columns(tables[0], info)
    mean = np.stack([t[columns].to_numpy(dtype=np.float64) for t in tables]).mean(0)
    values = torch.as_tensor(mean)
    values = info.task_obj.from_value_columns(values)
    id_column = "id" if "id" in tables[0].columns else "index"
    frame = prediction_frame(info, values, list(tables[0][id_column]))
    if "target" in tables[0].columns:
        frame["target"] = tables[0]["target"].to_numpy()
    return frame.rename(columns={"id": id_column})


def evaluate_ensemble(cfg, ckpts: list[str], out_dir: Path) -> dict[str, float]:
    """Test metrics (shared test set) and predictions of the fold ensemble; says what it is."""
    from rich.console import Console

    from dlrecipe.cv.summary import score_table
    from dlrecipe.predict import predict_table, split_predictions
    from dlrecipe.restore import restore

    restored = [restore(c, cfg.paths, cfg.get("data"))[1:] for c in ckpts]
    info = restored[0][1].info
    what = "probabilities" if info.task_obj.has_classes else "values"
    console = Console()
    console.print(f"fold ensemble: the mean of {len(ckpts)} fold models' {what} "
                  f"({cfg.ckpt_path})", soft_wrap=True, markup=False)  # fmt: skip
    tests = [datamodule.fold.test for datamodule, _ in restored]
    metrics: dict[str, float] = {}
    if len(tests[0]) and all(np.array_equal(t, tests[0]) for t in tests):
        tables = [split_predictions(m, dm, dm.fold.test) for dm, m in restored]
        metrics = score_table(mean_table(tables, info), info)
        for name, value in sorted(metrics.items()):
            console.print(f"  ensemble {name} = {value:.6f}", markup=False)
    else:
        console.print("  the folds have different test sets (data.split.test=folds): no ensemble "
                      "test metrics; cv_summary.json's pooled row scores them", markup=False)  # fmt: skip
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if cfg.predict.input:
        tables = [predict_table(m, dm, cfg.predict.input) for dm, m in restored]
        table = mean_table(tables, info)
        out = out_dir / cfg.predict.output
        table.to_csv(out, index=False)
        console.print(f"wrote {len(table)} fold-ensemble predictions to {out}", markup=False)
    return metrics
