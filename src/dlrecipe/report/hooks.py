"""The report's run hooks: learning curves, the augmentation preview, the HTML report.

    python -m dlrecipe.train report.enabled=false    # no report; curves and preview still drawn

Named in `hooks:` of conf/train.yaml; drop an entry there to drop what it draws.
"""

from __future__ import annotations

import time
from typing import Any

from dlrecipe.console import status
from dlrecipe.evaluate import history_rows
from dlrecipe.report.augmentation_grid import save_augmentation_grid
from dlrecipe.report.build import report_wanted, write_report
from dlrecipe.report.curves import overfitting_epoch, plot_learning_curves, stopped_early
from dlrecipe.summary import RunSummary


class LearningCurves:
    """learning_curves.png and the over-fitting note, from the History callback's rows."""

    def after_evaluate(self, ctx: Any, summary: RunSummary) -> None:
        rows = history_rows(ctx.trainer)
        if not (ctx.trainer.is_global_zero and rows):
            return
        stopped = stopped_early(ctx.trainer.current_epoch, ctx.cfg.trainer.get("max_epochs"))
        summary.learning_curves = str(plot_learning_curves(
            rows, ctx.run_dir / "learning_curves.png", summary.main_metric, summary.best_epoch,
            stopped,
        ))  # fmt: skip
        overfit = overfitting_epoch(rows)
        if overfit:
            summary.notes.append(
                f"validation loss was lowest at epoch {overfit} and rose afterwards while training "
                "loss kept falling: over-fitting (early stopping kept the best checkpoint)"
            )


class AugmentationPreview:
    """augmentation_preview.png: what the augmentation does to a few training images."""

    def before_fit(self, ctx: Any) -> None:
        data = ctx.datamodule
        if ctx.trainer.is_global_zero and data.info.is_image and data.augmentation.ops:
            save_augmentation_grid(data, ctx.run_dir / "augmentation_preview.png")


class Report:
    """report/index.html after testing (report.enabled; off in sweep trials and folds)."""

    def on_summary(self, ctx: Any, summary: RunSummary) -> None:
        if not report_wanted(ctx.cfg, summary):
            return
        with status("building the report") as took:
            summary.report = str(write_report(
                ctx.run_dir, ctx.model, ctx.datamodule, ctx.cfg.report, ctx.trainer.loggers
            ))  # fmt: skip
        summary.report_seconds = took["seconds"]
        summary.total_seconds = time.perf_counter() - ctx.started  # the report counts too
