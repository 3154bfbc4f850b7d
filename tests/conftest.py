"""Shared fixtures: composing real configs, tiny real runs on CPU, small files made on the fly."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from omegaconf import DictConfig

os.environ.setdefault("WANDB_MODE", "offline")  # tests never touch the network
os.environ.setdefault("WANDB_SILENT", "true")

from dlrecipe.builders import compose

# A real run, just short and quiet: CPU, few epochs, no progress bar redraws, and no HTML report
# (about two thirds of a short digits run's time goes into it). A test about the report, or
# about everything a default run leaves behind, asks for it: make_cfg(..., "report.enabled=true").
QUICK = [
    "trainer.accelerator=cpu",
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
    "report.enabled=false",
]


def run_main(main: Callable[[], Any], argv: list[str], cwd: Path | None = None) -> int | str:
    """Run a command's `main()` in this process as its console script would (argv[0] is the
    program name): its exit code. Leaves no Hydra state, log handler, argv or cwd behind, so the
    next test starts as clean as a new process would."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    sys.argv = [str(a) for a in argv]
    if cwd is not None:
        os.chdir(cwd)
    GlobalHydra.instance().clear()
    try:
        main()
        return 0
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, str) else int(stop.code or 0)
    finally:
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None
        for handler in root.handlers:  # Hydra's train.log handler: close it, or the file stays open
            if handler not in handlers:
                handler.close()
        root.handlers[:], root.level = handlers, level
        sys.argv = saved_argv
        os.chdir(saved_cwd)


@pytest.fixture(autouse=True, scope="session")
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Image-folder checks cache into a temporary folder, not the user's ~/.cache."""
    os.environ.setdefault("DLRECIPE_CACHE_DIR", str(tmp_path_factory.mktemp("dlrecipe_cache")))


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """compose(overrides) with the run directory inside tmp_path."""

    def make(*overrides: str, quick: bool = True, run_dir: Path | None = None) -> DictConfig:
        out = run_dir or tmp_path / "run"
        return compose([*(QUICK if quick else []), f"paths.output_dir={out}", *overrides])

    return make


@pytest.fixture
def table_csv(tmp_path: Path) -> Path:
    """A 200-row table: two numeric features, one string feature, class and value targets."""
    rng = np.random.default_rng(0)
    n = 200
    a, b = rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    frame = pd.DataFrame(
        {
            "a": a,
            "b": b,
            "colour": colour,
            "label": np.where(a + b > 0, "yes", "no"),
            "kind": np.where(a > 0.5, "x", np.where(a < -0.5, "y", "z")),
            "value": 3 * a - 2 * b + rng.normal(scale=0.1, size=n),
        }
    )
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """root/<class>/<n>.png: 3 classes of 12x12 grayscale images with a class-specific bar."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for c, name in enumerate(["bars", "cols", "dots"]):
        (root / name).mkdir(parents=True)
        for i in range(20):
            img = rng.integers(0, 60, size=(12, 12), dtype=np.uint8)
            if c == 0:
                img[4:8, :] = 250
            elif c == 1:
                img[:, 4:8] = 250
            else:
                img[::3, ::3] = 250
            Image.fromarray(img, mode="L").save(root / name / f"{i}.png")
    return root
