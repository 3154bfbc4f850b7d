"""Every debug= preset (conf/debug/*.yaml) runs to the end on the default experiment and leaves
its summary: summary.json for the training presets, sanity.json for the sanity suite.

    pytest tests/test_debug_presets.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlrecipe.builders import CONF_DIR
from dlrecipe.train import train

PRESETS = sorted(p.stem for p in (CONF_DIR / "debug").glob("*.yaml"))
# Scaled down only where a preset would otherwise run long on a CPU; the preset's own keys stay.
SMALLER = {
    "overfit": ["trainer.max_epochs=3"],
    "sanity": ["sanity.overfit_max_steps=30", "sanity.short_fit_epochs=1",
               "sanity.short_fit_min_steps=10", "sanity.gradcheck_samples=1"],
}  # fmt: skip


def test_the_presets_are_all_here():
    assert {"fdr", "limit", "overfit", "profiler", "sanity"} <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_each_debug_preset_runs_to_the_end_with_a_summary(make_cfg, preset):
    cfg = make_cfg(f"debug={preset}", "trainer.max_epochs=1", "report.enabled=false",
                   *SMALLER.get(preset, []))  # fmt: skip
    value = train(cfg)  # an exception here is a non-zero exit of the command line
    run = Path(cfg.paths.output_dir)
    if preset == "sanity":
        report = json.loads((run / "sanity.json").read_text())
        assert all(c["status"] != "fail" for c in report["checks"]), report
        return
    summary = json.loads((run / "summary.json").read_text())
    assert summary["val_metrics"] and summary["train_steps"] > 0
    if preset == "overfit":  # the preset optimizes the one batch's training loss
        assert value == pytest.approx(_last_train_loss(run), rel=1e-6)


def _last_train_loss(run: Path) -> float:
    import csv

    with open(run / "history.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss")]
    return float(rows[-1]["train/loss"])
