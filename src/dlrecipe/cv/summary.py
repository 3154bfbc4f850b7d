"""Aggregate K-fold runs: per-fold table, mean ± std, out-of-fold predictions, the fold ensemble.

    python -m dlrecipe.cv_report outputs/wine_mlp/multiruns/<date>/<time>   # after a multirun

Reads only what each fold run wrote (summary.json, val_predictions.csv, test_predictions.csv),
so folds run in one process and folds spread over jobs aggregate the same way. The ensemble
averages the fold models' probabilities (or values) on the fixed test set and scores them with
the same torchmetrics as a single run.
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

from dlrecipe.data.info import DataInfo
from dlrecipe.errors import ConfigError
from dlrecipe.models.tasks import build_metrics


@dataclass
class CVSummary:
    folds: list[dict[str, Any]]
    mean: dict[str, float]
    std: dict[str, float]
    ensemble: dict[str, float] = field(default_factory=dict)
    main_metric: str = "loss"
    optimized_metric: str | None = None
    run_dir: str = ""

    @property
    def optimized_value(self) -> float | list[float] | None:
        """The fold mean of the optimized metric(s): what a sweep over K-fold optimizes."""
        if not self.optimized_metric:
            return None
        if isinstance(self.optimized_metric, list | tuple):
            return [self.mean.get(m) for m in self.optimized_metric]
        return self.mean.get(self.optimized_metric)

    def write(self, out_dir: Path) -> None:
        data = {
            "folds": self.folds, "mean": self.mean, "std": self.std, "ensemble": self.ensemble,
            "main_metric": self.main_metric, "optimized_metric": self.optimized_metric,
            "optimized_value": self.optimized_value,
        }  # fmt: skip
        (out_dir / "cv_summary.json").write_text(json.dumps(data, indent=2) + "\n")
        rows = [*self.folds, {"fold": "mean", **self.mean}, {"fold": "std", **self.std}]
        if self.ensemble:
            rows.append({"fold": "ensemble", **self.ensemble})
        pd.DataFrame(rows).to_csv(out_dir / "cv_summary.csv", index=False)

    def print(self, console: Console | None = None) -> None:
        console = console or Console()
        columns = [c for c in self._columns() if c in self.mean]
        table = Table(title=f"cross-validation: {len(self.folds)} folds")
        table.add_column("fold")
        for c in columns:
            table.add_column(c, justify="right")
        for row in self.folds:
            table.add_row(row["fold"], *(_fmt(row.get(c)) for c in columns))
        table.add_section()
        table.add_row(
            "mean ± std", *(f"{self.mean[c]:.4f}±{self.std[c]:.4f}" for c in columns), style="bold"
        )
        if self.ensemble:
            table.add_row("fold ensemble (test)", *(_fmt(self.ensemble.get(c)) for c in columns))
        console.print(table)
        if isinstance(self.optimized_metric, str) and self.optimized_metric in self.mean:
            console.print(f"{self.optimized_metric} over folds: {self.mean[self.optimized_metric]:.4f} "
                          f"± {self.std[self.optimized_metric]:.4f}; written to {self.run_dir}")  # fmt: skip

    def _columns(self) -> list[str]:
        """The main metric and the loss; every other metric is in cv_summary.csv / .json."""
        main = self.main_metric
        return [f"val/{main}", "val/loss", f"test/{main}", "test/loss"]


def aggregate(
    fold_dirs: list[Path], out_dir: Path, optimized_metric: str | None = None
) -> CVSummary:
    if not fold_dirs:
        raise ConfigError(f"no fold runs (summary.json with a fold) under {out_dir}")
    summaries = [json.loads((d / "summary.json").read_text()) for d in fold_dirs]
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
        result.ensemble = ensemble_metrics([pd.read_csv(f) for f in test_files], info)
    _write_oof(fold_dirs, summaries, out_dir)
    result.write(out_dir)
    from dlrecipe.report.build import write_cv_report

    write_cv_report(out_dir, result)
    return result


def ensemble_metrics(tables: list[pd.DataFrame], info: DataInfo) -> dict[str, float]:
    """Average the folds' test predictions sample by sample and score them like one model."""
    prob_columns = [c for c in tables[0].columns if c.startswith("prob_")] or ["prediction"]
    if info.task == "binary":  # the positive class's column (one per class since both are written)
        prob_columns = [f"prob_{info.class_names[1]}"]
    stacked = np.stack(
        [t.sort_values("index")[prob_columns].to_numpy(dtype=np.float64) for t in tables]
    )
    mean = torch.as_tensor(stacked.mean(0), dtype=torch.float32)
    first = tables[0].sort_values("index")
    if info.task == "regression":
        preds, target = (
            mean.squeeze(-1),
            torch.as_tensor(first["target"].to_numpy(), dtype=torch.float32),
        )
    else:
        lookup = {name: i for i, name in enumerate(info.class_names)}
        target = torch.as_tensor([lookup[str(t)] for t in first["target"]], dtype=torch.long)
        preds = mean.squeeze(-1) if info.task == "binary" else mean
    metrics = build_metrics(info)
    metrics.update(preds, target)
    return {f"test/{k}": float(v) for k, v in metrics.compute().items()}


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
        if json.loads(path.read_text()).get("fold"):
            found.append(path.parent)
    return found


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
