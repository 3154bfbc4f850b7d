"""The sweep summary: best trial, a table of all trials, plots and the overrides that reproduce the best.

    python -m dlrecipe.sweep_report outputs/sweep/sweeps/digits_lr_bs

Written into the sweep directory at the end of every sweep (and by the command above):
`trials.csv`, `sweep_summary.json`, `best_overrides.yaml`, and PNGs of the optimization
history, parameter importances and a slice plot (optuna.visualization.matplotlib).
Open the study live with `optuna-dashboard <storage>` (pip install optuna-dashboard).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState
from rich import box
from rich.console import Console
from rich.table import Table

from dlrecipe.console import say, show
from dlrecipe.sweep.liveness import retried_numbers
from dlrecipe.sweep.space import override_value

log = logging.getLogger(__name__)


def trials_table(study: optuna.Study) -> pd.DataFrame:
    rows = []
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    for t in trials:
        duration = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
        values = t.values or []
        row = {"number": t.number, "state": t.state.name, "duration_s": duration}
        for i, v in enumerate(values):
            row["value" if len(values) == 1 else f"value_{i}"] = v
        row["last_step"] = t.last_step
        row.update({f"params.{k}": v for k, v in t.params.items()})
        row["error"] = t.user_attrs.get("error", "")
        if t.number in retried:  # a killed trial: which trial ran its parameters again
            row["error"] = (
                f"{row['error'] or 'its worker stopped'}; retried as trial {retried[t.number]}"
            )
        rows.append(row)
    return pd.DataFrame(rows)


def write_sweep_report(study: optuna.Study, sweep_dir: Path, fixed: list[str], storage: str, console: Console | None = None) -> dict:  # fmt: skip
    console = console or Console()
    table = trials_table(study)
    table.to_csv(sweep_dir / "trials.csv", index=False)
    counts = {s.name: len(study.get_trials(deepcopy=False, states=(s,))) for s in TrialState}
    summary: dict = {
        "study_name": study.study_name,
        "storage": storage,
        "counts": counts,
        "fixed_overrides": fixed,
    }
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if complete and len(study.directions) == 1:
        best = study.best_trial
        summary.update(best_number=best.number, best_value=best.value, best_params=best.params)
        # hydra.mode=RUN: one ordinary run with the preset's fixed settings, not a new sweep.
        overrides = [
            *fixed,
            *(f"{k}={override_value(v)}" for k, v in best.params.items()),
            "hydra.mode=RUN",
        ]
        lines = [
            "# Reproduce the best trial:",
            "#   python -m dlrecipe.train " + " ".join(overrides),
        ]
        (sweep_dir / "best_overrides.yaml").write_text(
            "\n".join(lines) + "\n" + "\n".join(f"- {o}" for o in overrides) + "\n"
        )
        summary["plots"] = _plots(study, sweep_dir)
    elif complete:
        summary["best_trials"] = [
            {"number": t.number, "values": t.values, "params": t.params} for t in study.best_trials
        ]
    (sweep_dir / "sweep_summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    _print(console, study, table, summary, sweep_dir)
    return summary


def _plots(study: optuna.Study, sweep_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # no "categorical units" chatter
    made = []
    plots = {"optimization_history": ovm.plot_optimization_history, "slice": ovm.plot_slice}
    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) >= 3:
        plots["param_importances"] = ovm.plot_param_importances
    for name, plot in plots.items():
        try:
            # rc_context: Optuna's plots switch the whole process to the ggplot style, which
            # would restyle every later figure drawn in it (reports of in-process runs)
            with warnings.catch_warnings(), matplotlib.rc_context():
                warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
                axes = plot(study)
                figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
                if name == "slice":  # one panel per parameter: give each room beside the colour bar
                    figure.set_size_inches(4.2 * len(study.best_trial.params) + 1.5, 4.8)
            path = sweep_dir / f"{name}.png"
            figure.savefig(path, dpi=100, bbox_inches="tight")
            plt.close(figure)
            made.append(str(path))
        except Exception as err:  # a plot must never fail the sweep (e.g. importances need variety)
            log.info("skipped the %s plot: %s", name, err)
    return made


def _print(
    console: Console, study: optuna.Study, table: pd.DataFrame, summary: dict, sweep_dir: Path
) -> None:
    # Fits 80 columns: short headers (the last part of a key that is unique), 4 digits (all
    # of them in trials.csv); a console still too narrow folds a cell, never cuts it ("COMPLE…").
    shown = Table(title=f"study {study.study_name}: {len(table)} trials", box=box.SIMPLE_HEAD,
                  pad_edge=False, collapse_padding=True)  # fmt: skip
    columns = [c for c in table.columns if c not in ("error", "last_step")]
    headers = short_names([c.removeprefix("params.") for c in columns])
    headers = [{"number": "trial", "duration_s": "seconds"}.get(h, h) for h in headers]
    for header in headers:
        shown.add_column(header, justify="right", overflow="fold")
    for _, row in table.tail(30).iterrows():
        shown.add_row(*(_fmt(row[c]) for c in columns))
    show(shown, console)
    counts = ", ".join(f"{n.lower()} {c}" for n, c in summary["counts"].items() if c)
    say(f"trials: {counts}", console)
    if "best_value" in summary:
        say(f"best: trial {summary['best_number']} value {summary['best_value']:.5g} "
            f"params {summary['best_params']}", console)  # fmt: skip
        say(f"reproduce it with the overrides in {sweep_dir / 'best_overrides.yaml'}", console)


def short_names(keys: list[str]) -> list[str]:
    """model.optimizer.lr -> lr: the shortest dotted suffix of each key that no other key shares."""
    names = []
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            name = ".".join(parts[-n:])
            if sum(k == name or k.endswith("." + name) for k in keys) == 1:
                break
        names.append(name)
    return names


def _fmt(value) -> str:
    if isinstance(value, float):
        return "-" if value != value else f"{value:.4g}"
    return str(value)
