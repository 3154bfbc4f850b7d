"""Overlay the learning curves of several runs and rank their final metrics.

    python -m dlrecipe.compare outputs/wine_mlp/multiruns/<date>/<time>           # every job of a multirun
    python -m dlrecipe.compare <run dir> <run dir> ... --out comparisons/batch_size

Reads only what each run wrote: history.csv (per-epoch train / validation loss and main
metric), summary.json (final metrics, status) and .hydra/overrides.yaml, read as YAML data and
never instantiated. Each run is labelled by the overrides that differ between the runs (its
directory name when they do not). Writes compare.png (loss and main metric, train solid and
validation dashed) and compare.csv (the final metrics, best first by the optimized metric, in
the direction that metric improves) into --out, by default outputs/compare/<date>/<time>/, and
prints the table.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from dlrecipe.edge import ArgumentParser, user_error
from dlrecipe.errors import ConfigError
from dlrecipe.tasks import direction as metric_direction
from dlrecipe.tasks import metric_names


@dataclass
class Run:
    path: Path
    history: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] | None = None
    label: str = ""

    def metric(self, name: str) -> float:
        for part in ("val_metrics", "test_metrics"):
            value = (self.summary.get(part) or {}).get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
        return math.nan


def is_run(path: Path) -> bool:
    return (path / "summary.json").is_file() or (path / "history.csv").is_file()


def find_runs(paths: list[Path]) -> list[Path]:
    """The run directories named, or the jobs of a multirun directory, in job order."""
    found: list[Path] = []
    for path in paths:
        if not path.exists():
            raise ConfigError(f"{path} does not exist; pass run directories or a multirun directory")  # fmt: skip
        if not path.is_dir():
            raise ConfigError(f"{path} is not a directory; pass run directories or a multirun directory")  # fmt: skip
        if is_run(path):
            found.append(path)
            continue
        jobs = sorted((p for p in path.iterdir() if p.is_dir() and is_run(p)),
                      key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))  # fmt: skip
        if not jobs:
            raise ConfigError(
                f"{path} is not a run (no summary.json or history.csv) and holds no runs; pass run "
                "directories (outputs/<task>/<date>/<time>) or a multirun directory"
            )
        found += jobs
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if len(unique) < 2:
        raise ConfigError(f"compare needs at least two runs; found {len(unique)} in {[str(p) for p in paths]}")  # fmt: skip
    return unique


def read_run(path: Path) -> Run:
    """history.csv, summary.json and the overrides of one run, checked as untrusted data."""
    history = pd.DataFrame()
    csv = path / "history.csv"
    if csv.is_file():
        try:
            history = pd.read_csv(csv).apply(pd.to_numeric, errors="coerce")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise ConfigError(f"{csv} is not a readable history table ({err}); remove that run from the list") from None  # fmt: skip
    summary: dict[str, Any] = {}
    file = path / "summary.json"
    if file.is_file():
        try:
            summary = json.loads(file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"{file} is not valid JSON ({err}); remove that run from the list") from None  # fmt: skip
        if not isinstance(summary, dict):
            raise ConfigError(f"{file} is not a run summary (a JSON object); remove that run from the list")  # fmt: skip
    return Run(path, history, summary, read_overrides(path))


def read_overrides(path: Path) -> list[str] | None:
    """.hydra/overrides.yaml as plain data (yaml.safe_load): a list of strings, or None."""
    import yaml

    file = path / ".hydra" / "overrides.yaml"
    if not file.is_file():
        return None
    try:
        data = yaml.safe_load(file.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{file} is not readable YAML ({err}); remove that run from the list") from None  # fmt: skip
    if data is None:
        return []
    if not isinstance(data, list) or not all(isinstance(o, str) for o in data):
        raise ConfigError(f"{file} is not a list of overrides; remove that run from the list")
    return data


def label_runs(runs: list[Run]) -> None:
    """Each run's label: the overrides whose value differs between the runs, else its directory."""
    parsed = []
    for run in runs:
        pairs = {}
        for item in run.overrides or []:
            key, _, value = item.lstrip("+~").partition("=")
            pairs[key] = value
        parsed.append(pairs)
    keys = sorted({k for p in parsed for k in p})
    differing = [k for k in keys if len({p.get(k) for p in parsed}) > 1]
    names = [run.path.name for run in runs]
    if len(set(names)) < len(names):  # same leaf name (two multiruns' job 0): add the parent
        names = [f"{run.path.parent.name}/{run.path.name}" for run in runs]
    for run, pairs, name in zip(runs, parsed, names, strict=True):
        if run.overrides is not None and differing:
            run.label = " ".join(f"{k}={pairs[k]}" if k in pairs else f"(no {k})" for k in differing)  # fmt: skip
        else:
            run.label = name
    labels = [r.label for r in runs]
    for run, name in zip(runs, names, strict=True):
        if labels.count(run.label) > 1:  # same differing overrides (a repeated run): tell apart
            run.label = f"{run.label} [{name}]"


def direction(metric: str) -> str:
    """max or min, from the tasks' table of which metrics improve upwards (dlrecipe.tasks)."""
    way = metric_direction(metric)
    if way is not None:
        return way
    raise ConfigError(f"--metric {metric}: unknown direction; use one of the logged val/ or test/ metrics such as val/loss or val/acc")  # fmt: skip


def main_metric(runs: list[Run]) -> str:
    names = set()
    for run in runs:
        name = run.summary.get("main_metric")
        if not isinstance(name, str):
            name = next((c.split("/", 1)[1] for c in run.history.columns
                         if c.startswith("train/") and c != "train/loss"), "loss")  # fmt: skip
        names.add(name)
    if len(names) > 1:
        raise ConfigError(f"these runs are of different tasks (main metrics {sorted(names)}); compare runs of one task")  # fmt: skip
    return names.pop()


def compare(paths: list[Path], out_dir: Path, metric: str | None = None) -> pd.DataFrame:
    runs = [read_run(p) for p in find_runs(paths)]
    label_runs(runs)
    main = main_metric(runs)
    if metric is None:
        wanted = runs[0].summary.get("optimized_metric")
        metric = next(iter(metric_names(wanted)), None) or "val/loss"  # the first objective
    mode = direction(str(metric))
    if (out_dir / "compare.png").exists():
        raise ConfigError(f"--out {out_dir} already holds a compare.png; choose another folder (nothing was overwritten)")  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    table = _table(runs, main, str(metric), mode)
    table.to_csv(out_dir / "compare.csv", index=False)
    _plot(runs, main, out_dir / "compare.png")
    _print(table, str(metric), mode, out_dir)
    return table


def _table(runs: list[Run], main: str, metric: str, mode: str) -> pd.DataFrame:
    columns = dict.fromkeys([metric, f"val/{main}", "val/loss", f"test/{main}", "test/loss"])
    rows = []
    for run in runs:
        status = run.summary.get("status") or (
            "no summary.json" if not run.summary else "completed"
        )
        row = {"run": run.label, "status": status, "epochs": len(run.history),
               **{c: run.metric(c) for c in columns}, "dir": str(run.path)}  # fmt: skip
        rows.append(row)
    table = pd.DataFrame(rows)
    key = table[metric] if mode == "min" else -table[metric]
    table = table.assign(_key=key.fillna(math.inf)).sort_values("_key", kind="stable")
    return table.drop(columns="_key").reset_index(drop=True)


def _plot(runs: list[Run], main: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers and in CI
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, run in enumerate(runs):
        colour, history = colours[i % len(colours)], run.history
        if "epoch" not in history:
            continue
        epochs = history["epoch"] + 1
        for ax, key in zip(axes, ("loss", main), strict=True):
            for stage, style in (("train", "-"), ("val", "--")):
                column = f"{stage}/{key}"
                if column in history and history[column].notna().any():
                    ax.plot(epochs, history[column], style, color=colour, marker="o", markersize=2,
                            label=run.label if stage == "train" else None)  # fmt: skip
    for ax, key in zip(axes, ("loss", main), strict=True):
        ax.set_title(f"{key} (train solid, validation dashed)")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _print(table: pd.DataFrame, metric: str, mode: str, out_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    view = Table(title=f"runs by {metric} ({'lower' if mode == 'min' else 'higher'} is better)")
    names = [c for c in table.columns if c != "dir"]
    for name in names:
        view.add_column(name, justify="left" if name in ("run", "status") else "right")
    for _, row in table.iterrows():
        view.add_row(
            *(f"{row[c]:.4f}" if isinstance(row[c], float) else str(row[c]) for c in names)
        )
    console = Console()
    console.print(view)
    console.print(f"figure: {out_dir / 'compare.png'}; table: {out_dir / 'compare.csv'}")


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m dlrecipe.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run directories, or a multirun directory")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="folder for compare.png / .csv (default outputs/compare/<date>/<time>)")  # fmt: skip
    parser.add_argument("--metric", default=None, help="sort by this metric (default: the runs' optimized_metric)")  # fmt: skip
    args = parser.parse_args(argv)
    out = args.out or Path("outputs/compare") / datetime.now().strftime("%Y-%m-%d/%H-%M-%S-%f")
    try:
        compare(args.runs, out, args.metric)
    except Exception as err:  # a user's mistake: one line, exit 2; a bug: its traceback
        return user_error(err, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
