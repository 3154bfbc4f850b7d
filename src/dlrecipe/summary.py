"""The end-of-run summary: a printed table and `summary.json` in the run directory.

    cat outputs/train/<date>/<time>/summary.json

One place that answers "how did the run go": its status (completed, or diverged with the
diagnosis and no metrics), test (and best-checkpoint validation) metrics, best epoch and
checkpoint, parameter counts, wall time, throughput and peak memory, and a note when the
learning curves show over-fitting.
"""

from __future__ import annotations

import json
import resource
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from dlrecipe.console import say, show


@dataclass
class RunSummary:
    run_dir: str
    task: str
    main_metric: str
    val_metrics: dict[str, float] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)
    best_epoch: int | None = None
    epochs_run: int = 0
    best_checkpoint: str | None = None
    params_total: int = 0
    params_trainable: int = 0
    fit_seconds: float = 0.0
    total_seconds: float = 0.0
    train_steps: int = 0
    learning_curves: str | None = None
    notes: list[str] = field(default_factory=list)
    fold: str | None = None  # the fold's name under K-fold (fold3, repeat1_fold0)
    info: dict[str, Any] = field(default_factory=dict)  # the DataInfo, for reports and CV
    optimized_metric: str | None = None
    optimized_value: float | None = None
    report: str | None = None  # report/index.html
    report_seconds: float | None = None  # time to build the report (part of total_seconds)
    peak_rss_mb: float = 0.0  # this process's peak resident memory (not DataLoader workers')
    peak_gpu_mb: float | None = None  # torch.cuda.max_memory_allocated; None without CUDA
    status: str = "completed"  # completed | diverged (the loss became NaN / inf: no result)
    diagnosis: str | None = None  # why a run did not complete, and the overrides to try
    # What to try next (dlrecipe.diagnosis): [{finding, evidence, try}], [] for a healthy run.
    next_steps: list[dict[str, str]] = field(default_factory=list)
    refit: dict[str, Any] | None = None  # refit=true: the train+val model (dlrecipe.refit)
    model_to_use: str | None = None  # the checkpoint to predict with (refit.ckpt when refitted)
    versions: dict[str, Any] = field(default_factory=dict)  # libraries and git commit (versions.py)
    tags: list[str] = field(default_factory=list)  # the run's tags=[...] (conf/train.yaml)

    @property
    def steps_per_second(self) -> float:
        return self.train_steps / self.fit_seconds if self.fit_seconds > 0 else 0.0

    def record_peak_memory(self) -> None:
        """Peak memory of this process (rank 0's under DDP) and, when CUDA ran, of the GPU."""
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.peak_rss_mb = peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # B / KiB
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            self.peak_gpu_mb = torch.cuda.max_memory_allocated() / 2**20

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "steps_per_second": self.steps_per_second}

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def print(self, console: Console | None = None) -> None:
        console = console or Console()
        where = f", {self.fold}" if self.fold else ""
        table = Table(title=f"dlrecipe run summary ({self.task}{where})", show_header=True)
        table.add_column("metric")
        table.add_column("validation (best ckpt)", justify="right")
        table.add_column("test", justify="right")
        refit = (self.refit or {}).get("test_metrics") or {}
        if refit:  # refit=true: the train+validation model's test side by side
            table.add_column(f"test (refit, {self.refit['epochs']} ep)", justify="right")
        names = sorted({k.split("/", 1)[1] for k in (*self.val_metrics, *self.test_metrics)})
        names.sort(key=lambda n: (n != self.main_metric, n != "loss", n))
        for name in names:
            val, test = self.val_metrics.get(f"val/{name}"), self.test_metrics.get(f"test/{name}")
            style = "bold" if name == self.main_metric else None
            cells = [_fmt(val), _fmt(test)] + ([_fmt(refit.get(f"test/{name}"))] if refit else [])
            table.add_row(name, *cells, style=style)
        show(table, console)
        facts = Table.grid(padding=(0, 2))
        facts.add_column(no_wrap=True, min_width=15)  # the labels, aligned with the paths below
        facts.add_column()
        # 1-based like the progress bar ("Epoch 14/30") and the file name best-epoch014.ckpt
        facts.add_row(
            "best epoch", f"{self.best_epoch} of {self.epochs_run}" if self.best_epoch else "-"
        )
        facts.add_row("parameters", f"{self.params_total:,} ({self.params_trainable:,} trainable)")
        parts = f"fit {self.fit_seconds:.1f} s"
        if self.report_seconds is not None:
            parts += f", report {self.report_seconds:.1f} s"
        facts.add_row("wall time", f"{self.total_seconds:.1f} s ({parts})")
        facts.add_row(
            "throughput", f"{self.steps_per_second:.1f} steps/s ({self.train_steps} steps)"
        )
        memory = f"{self.peak_rss_mb:,.0f} MB resident"
        if self.peak_gpu_mb is not None:
            memory += f", {self.peak_gpu_mb:,.0f} MB GPU (max allocated)"
        facts.add_row("peak memory", memory)
        show(facts, console)
        # Paths on lines of their own, never wrapped or cut by rich: copyable at any width.
        paths = [("best checkpoint", self.best_checkpoint or "- (not saved)")]
        if self.learning_curves:
            paths.append(("learning curves", self.learning_curves))
        if self.report:
            paths.append(("report", self.report))
        if self.model_to_use and self.model_to_use != self.best_checkpoint:
            paths.append(("model to use", self.model_to_use))  # refit=true: the train+val model
        paths.append(("run directory", self.run_dir))
        for label, path in paths:
            say(f"{label:<15}  {path}", console)
        for note in self.notes:
            show(Text.assemble(("note:", "yellow"), f" {note}"), console)
        if self.next_steps:
            show(Text("what to try next", style="bold"), console)
        for step in self.next_steps:  # overrides hold [...]: printed as text, not markup
            say(f"- {step['finding']}: {step['evidence']}. Try: {step['try']}", console)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
