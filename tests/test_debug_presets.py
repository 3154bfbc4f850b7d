"""Every debug= preset (conf/debug/*.yaml) runs to the end on the default experiment and leaves
its summary: summary.json for the training presets, sanity.json for the sanity suite.

    pytest tests/test_debug_presets.py -q
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from dlrecipe.builders import CONF_DIR
from dlrecipe.train import main, train
from tests.conftest import QUICK, run_main

PRESETS = sorted(p.stem for p in (CONF_DIR / "debug").glob("*.yaml"))
# Scaled down only where a preset would otherwise run long on a CPU; the preset's own keys stay.
SMALLER = {
    "overfit": ["trainer.max_epochs=3"],
    "sanity": ["sanity.overfit_max_steps=30", "sanity.short_fit_epochs=1",
               "sanity.short_fit_min_steps=10", "sanity.gradcheck_samples=1"],
}  # fmt: skip


def test_the_presets_are_all_here():
    assert {"fdr", "limit", "overfit", "profiler", "sanity"} <= set(PRESETS)


# profiler has its own test below: the same run, through the command line, whose output it reads.
@pytest.mark.parametrize("preset", [p for p in PRESETS if p != "profiler"])
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


def test_profiler_preset_prints_its_hook_timings_and_exits_0(tmp_path, caplog):
    # Lightning prints the table through its logger (stderr from a shell): read the records.
    caplog.set_level(logging.INFO, logger="lightning.pytorch")
    run = tmp_path / "run"
    quick = [o for o in QUICK if not o.startswith("trainer.max_epochs=")]  # the preset's own: 1
    args = ["dlrecipe-train", *quick, "debug=profiler", "report.enabled=false",
            f"hydra.run.dir={run}"]  # fmt: skip
    assert run_main(main, args, cwd=tmp_path) == 0
    text = caplog.text
    assert "FIT Profiler Report" in text  # what the preset promises: the table, at the end
    # The row of the training epochs: | run_training_epoch | mean s | calls | total s | % |
    row = next(ln for ln in text.splitlines() if ln.lstrip().startswith("|  run_training_epoch"))
    mean, calls, total = (float(cell) for cell in row.split("|")[2:5])
    assert calls == 1 and 0 < mean == total  # the preset's max_epochs=1: one epoch, timed
    assert json.loads((run / "summary.json").read_text())["train_steps"] > 0
