"""What the benchmark scripts share: one quiet, real training run in this process, timed."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from dlrecipe.builders import compose
from dlrecipe.train import train

# A normal run without progress-bar drawing or the model table: what is timed is training.
QUIET = [
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
]


def timed_run(overrides: list[str]) -> tuple[float, dict]:
    """(wall seconds of train(), its summary.json; for K-fold, the first fold's)."""
    with tempfile.TemporaryDirectory() as out:
        cfg = compose([*QUIET, f"paths.output_dir={out}", *overrides])
        start = time.perf_counter()
        train(cfg)
        seconds = time.perf_counter() - start
        summary = Path(out) / "summary.json"
        if not summary.is_file():
            summary = next(Path(out).glob("*/summary.json"))
        return seconds, json.loads(summary.read_text())
