"""Aggregate K-fold runs: per-fold table, mean ± std, out-of-fold predictions, the fold ensemble.

    python -m dlrecipe.cv_report outputs/wine_mlp/multiruns/<date>/<time>   # after a multirun

Reads only what each fold run wrote (summary.json, val_predictions.csv, test_predictions.csv),
so folds run in one process and folds spread over jobs aggregate the same way. The ensemble
averages the fold models' probabilities (or values) on the fixed test set and scores them with
the same torchmetrics as a single run. With data.split.test=folds the test sets are disjoint:
their predictions are pooled instead, every sample scored once by the model that never saw it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from rich.table import Table

from dlrecipe.console import say, show
from dlrecipe.data.info import DataInfo
from dlrecipe.errors import ConfigError, read_json
from dlrecipe.tasks import metric_names


@dataclass
class CVSummary:
    folds: list[dict[str, Any]]
    mean: dict[str, float]
    std: dict[str, float]
    ensemble: dict[str, float] = field(default_factory=dict)
    pooled: dict[str, float] = field(default_factory=dict)  # test=folds: all folds' tests as one
    main_metric: str = "loss"
    optimized_metric: str | None = None
    run_dir: str = ""

    @property
    def optimized_value(self) -> float | list[float] | None:
        """The fold mean of the optimized metric(s): what a sweep over K-fold optimizes."""
        if not self.optimized_metric:
            return None
        values = [self.mean.get(m) for m in metric_names(self.optimized_metric)]
        return values if isinstance(self.optimized_metric, list | tuple) else values[0]

    def write(self, out_dir: Path) -> None:
        data = {
            "folds": self.folds, "mean": self.mean, "std": self.std, "ensemble": self.ensemble,
            "pooled": self.pooled, "main_metric": self.main_metric, "optimized_metric": self.optimized_metric,
            "optimized_value": self.optimized_value,
        }  # fmt: skip
        (out_dir / "cv_summary.json").write_text(json.dumps(data, indent=2) + "\n")
        rows = [*self.folds, {"fold": "mean", **self.mean}, {"fold": "std", **self.std}]
        if self.ensemble:
            rows.append({"fold": "ensemble", **self.ensemble})
        if self.pooled:
            rows.append({"fold": "pooled", **self.pooled})
        pd.DataFrame(rows).to_csv(out_dir / "cv_summary.csv", index=False)

    def print(self, console: Console | None = None) -> None:
        console = console or Console()
        columns = [c for c in self._columns() if c in self.mean]
        table = Table(title=f"cross-validation: {len(self.folds)} folds")
        # Cells wrap at their spaces ("0.3715 ± / 0.1346"), or fold: never cut with "…".
        table.add_column("fold", overflow="fold")
        for c in columns:
            table.add_column(c, justify="right", overflow="fold")
        for row in self.folds:
            table.add_row(row["fold"], *(_fmt(row.get(c)) for c in columns))
        table.add_section()
        table.add_row(
            "mean ± std",
            *(f"{self.mean[c]:.4f} ± {self.std[c]:.4f}" for c in columns),
            style="bold",
        )
        if self.ensemble:
            table.add_row("fold ensemble (test)", *(_fmt(self.ensemble.get(c)) for c in columns))
        if self.pooled:
            table.add_row("pooled (each fold's test)", *(_fmt(self.pooled.get(c)) for c in columns))
        show(table, console)
        if isinstance(self.optimized_metric, str) and self.optimized_metric in self.mean:
            say(f"{self.optimized_metric} over folds: {self.mean[self.optimized_metric]:.4f} "
                f"± {self.std[self.optimized_metric]:.4f}; written to {self.run_dir}", console)  # fmt: skip

    def _columns(self) -> list[str]:
        """The main metric and the loss; every other metric is in cv_summary.csv / .json."""
        main = self.main_metric
        return [f"val/{main}", "val/loss", f"test/{main}", "test/loss"]


def aggregate(
    fold_dirs: list[Path], out_dir: Path, optimized_metric: str | None = None
) -> CVSummary:
    if not fold_dirs:
        raise ConfigError(f"no fold runs (summary.json with a fold) under {out_dir}")
    summaries = [read_json(d / "summary.json") for d in fold_dirs]
    diverged = [d.name for s, d in zip(summaries, fold_dirs, strict=True)
                if s.get("status") == "diverged"]  # fmt: skip
    if diverged:  # their empty metrics must not pass for a cross-validated score
        raise ConfigError(
            f"fold run(s) {diverged} under {out_dir} diverged (summary.json status: diverged), so "
            "there is no cross-validated result; fix the cause their diagnosis names and rerun"
        )
    rows = [
        {
            "fold": s["fold"] or d.name,
            "dir": os.path.relpath(d, out_dir),
            **s["val_metrics"],
            **s["test_metrics"],
        }
        for s, d in zip(summaries, fold_dirs, strict=True)
    ]
    keys = sorted({k for r in rows for k in r if k not in ("fold", "dir")})
    values = {k: np.array([r[k] for r in rows if k in r], dtype=float) for k in keys}
    info = DataInfo.from_dict(summaries[0]["info"])
    result = CVSummary(
        folds=rows,
        mean={k: float(v.mean()) for k, v in values.items()},
        std={k: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for k, v in values.items()},
        main_metric=summaries[0]["main_metric"],
        optimized_metric=optimized_metric or summaries[0].get("optimized_metric"),
        run_dir=str(out_dir),
    )
    test_files = [
        d / "test_predictions.csv" for d in fold_dirs if (d / "test_predictions.csv").is_file()
    ]
    if len(test_files) == len(fold_dirs):
        tables = [pd.read_csv(f) for f in test_files]
        if all(set(t["index"]) == set(tables[0]["index"]) for t in tables):
            result.ensemble = ensemble_metrics(tables, info)
        else:  # data.split.test=folds: disjoint test sets, one prediction per sample
            result.pooled = score_table(pd.concat(tables), info)
    _write_oof(fold_dirs, summaries, out_dir)
    result.write(out_dir)
    from dlrecipe.report.build import write_cv_report

    write_cv_report(out_dir, result)
    return result


def ensemble_metrics(tables: list[pd.DataFrame], info: DataInfo) -> dict[str, float]:
    """Average the folds' test predictions sample by sample and score them like one model."""
    columns = value_columns(tables[0], info)
    first = tables[0].sort_values("index").reset_index(drop=True)
    stacked = np.stack([t.sort_values("index")[columns].to_numpy(dtype=np.float64) for t in tables])
    first[columns] = stacked.mean(0)
    return score_table(first, info)


def score_table(table: pd.DataFrame, info: DataInfo) -> dict[str, float]:
    """Score a predictions table (prob_* or prediction columns, and target) like one model."""
    values = torch.tensor(
        table[value_columns(table, info)].to_numpy(dtype=np.float64), dtype=torch.float32
    )
    task = info.task_obj
    preds = task.from_value_columns(values)
    if not task.has_classes:
        target = torch.as_tensor(table["target"].to_numpy(), dtype=torch.float32)
    else:
        lookup = {name: i for i, name in enumerate(info.class_names)}
        target = torch.as_tensor([lookup[str(t)] for t in table["target"]], dtype=torch.long)
    metrics = task.metric_collection()
    metrics.update(preds, target)
    return {f"test/{k}": float(v) for k, v in metrics.compute().items()}


def value_columns(table: pd.DataFrame, info: DataInfo) -> list[str]:
    """The columns a model's output is read back from: probabilities, or regression values."""
    return info.task_obj.value_columns(list(table.columns), info.class_names)


def _write_oof(fold_dirs: list[Path], summaries: list[dict], out_dir: Path) -> None:
    """Every training sample predicted by the model that did not train on it (per repeat)."""
    parts = []
    for d, s in zip(fold_dirs, summaries, strict=True):
        path = d / "val_predictions.csv"
        if path.is_file():
            table = pd.read_csv(path)
            table.insert(0, "fold", s["fold"] or d.name)
            parts.append(table)
    if parts:
        pd.concat(parts).to_csv(out_dir / "oof_predictions.csv", index=False)


def fold_run_dirs(root: Path) -> list[Path]:
    """Fold runs under a directory (a K-fold run or a multirun over data.split.fold)."""
    found = []
    for path in sorted(root.rglob("summary.json")):
        if read_json(path).get("fold"):
            found.append(path.parent)
    return found


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
