"""The cheaper paths of issue #24 lose nothing: asynchronous checkpoint writes, the history
appended row by row, and the generator state saved as one tensor.

    pytest tests/test_perf_paths.py -q

The resume test kills a real `python -m dlrecipe.train trainer=async_checkpoint` process
(SIGKILL, so a write still in flight is lost), resumes it and compares with an uninterrupted run
that wrote its checkpoints synchronously.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dlrecipe.callbacks.history import History
from dlrecipe.callbacks.random_state import capture, restore
from dlrecipe.train import main
from tests.conftest import run_main

EPOCHS = 30  # wine MLP, batch 8: ~25 ms an epoch, so a kill lands mid-run
COMMON = ["experiment=wine_mlp", f"trainer.max_epochs={EPOCHS}", "data.batch_size=8",
          "callbacks.early_stopping=null", "report.enabled=false", "trainer.accelerator=cpu",
          "trainer.enable_progress_bar=false", "callbacks.progress_bar=null",
          "callbacks.model_summary=null", "extras.lint=false"]  # fmt: skip


def cli(*args: str) -> int:
    """`python -m dlrecipe.train *args` in this process; the exit status."""
    return run_main(main, ["dlrecipe.train", *args])


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def results(run: Path) -> dict[str, float]:
    summary = json.loads((run / "summary.json").read_text())
    return {**summary["val_metrics"], **summary["test_metrics"]}


@pytest.mark.slow
def test_async_checkpoints_resume_losing_at_most_one_epoch_with_identical_metrics(tmp_path):
    reference = tmp_path / "reference"  # synchronous writes, never interrupted
    assert cli(*COMMON, f"hydra.run.dir={reference}") == 0

    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlrecipe.train", *COMMON, "trainer=async_checkpoint",
         f"hydra.run.dir={run}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    history, deadline = run / "history.csv", time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if history.is_file() and len(history.read_text().splitlines()) >= 5:
            break
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]

    done = len(rows(history))  # epochs finished before the kill (a row follows last.ckpt's save)
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]
    assert done - 2 <= saved < EPOCHS - 1  # 0-based: at most the newest epoch's write was lost
    # the resumed run keeps the plugin: trainer=async_checkpoint ships in conf/, so it is trusted
    assert cli(f"resume={run}") == 0

    expected, got = results(reference), results(run)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key
    ours, theirs = rows(history), rows(reference / "history.csv")
    assert [r["epoch"] for r in ours] == [str(e) for e in range(EPOCHS)]  # no row lost or doubled
    for mine, other in zip(ours, theirs, strict=True):
        assert mine.keys() == other.keys()
        for key in other:
            assert float(mine[key]) == pytest.approx(float(other[key]), abs=1e-6), key


def test_appended_history_matches_a_full_rewrite_also_when_a_column_appears(tmp_path):
    epochs = [
        {"epoch": 0, "step": 5, "train/loss": 1.0, "lr": 0.1},
        {"epoch": 1, "step": 10, "train/loss": 0.5, "lr": 0.1},
        {"epoch": 2, "step": 15, "train/loss": 0.4, "val/loss": 0.6, "lr": 0.05},  # new column
        {"epoch": 3, "step": 20, "train/loss": 0.3, "lr": 0.05},  # one missing
        {"epoch": 4, "step": 25, "train/loss": 0.2, "val/loss": 0.4, "lr": 0.01},
    ]
    appended, path = History(), tmp_path / "history.csv"
    for row in epochs:
        appended.rows.append(row)
        appended.write(path)
    rewritten = History()
    rewritten.rows = list(epochs)
    rewritten._columns = None  # never written: a full write
    rewritten.write(tmp_path / "full.csv")
    got = path.read_text()
    assert got.splitlines()[0] == "epoch,step,train/loss,lr,val/loss"
    # the same columns and values, row for row (the appended file orders its columns the same)
    assert rows(path) == rows(tmp_path / "full.csv")
    assert len(got.splitlines()) == len(epochs) + 1


def test_history_rewrites_its_file_after_loading_rows_from_a_checkpoint(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,step\n0,5\n1,10\n2,15\n")  # a killed run got further than its ckpt
    history = History()
    history.load_state_dict({"rows": [{"epoch": 0, "step": 5}, {"epoch": 1, "step": 10}]})
    history.rows.append({"epoch": 2, "step": 15})
    history.write(path)
    history.rows.append({"epoch": 3, "step": 20})
    history.write(path)
    assert [r["epoch"] for r in rows(path)] == ["0", "1", "2", "3"]  # no doubled epoch 2


def test_generator_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    state = capture()
    assert isinstance(state["python"]["internal"], torch.Tensor)  # one object, not 625 ints
    torch.save(state, tmp_path / "s.pt")
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    restore(torch.load(tmp_path / "s.pt", weights_only=True))
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected
    # checkpoints written before this change hold a list of ints: they restore the same
    old = {**state, "python": {**state["python"], "internal": state["python"]["internal"].tolist()}}
    restore(old)
    assert random.random() == expected[0]


def test_normalization_is_fitted_chunk_by_chunk_with_the_one_shot_statistics(make_cfg):
    from dlrecipe.builders import build_data
    from dlrecipe.data.loaders import CHUNK_VALUES, float_batches, to_float

    data = build_data(
        make_cfg("data=synthetic", "data.source.samples=800", "+data.source.shape=[3,32,32]")
    )
    train = data.fold.train
    chunks = [len(x) for x in float_batches(data.data.inputs, train)]
    # 3x32x32 = 3072 values a sample: at most 2**20 // 3072 = 341 samples a chunk, not all
    # 560 training images as floats (and float64) at once
    assert max(chunks) == CHUNK_VALUES // 3072 and sum(chunks) == len(train)
    data.setup("fit")
    x = to_float(data.data.inputs[torch.as_tensor(train)]).double()
    assert torch.allclose(data.normalization.mean.double(), x.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(
        data.normalization.std.double(), x.std((0, 2, 3), unbiased=False), atol=1e-5
    )


def test_an_image_folder_in_memory_holds_every_file_decoded_in_order(tmp_path):
    from PIL import Image

    from dlrecipe.data.sources.image_folder import load_image_folder, read_image

    rng = np.random.default_rng(0)
    files = []
    for label in ("a", "b"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(3):
            path = tmp_path / "imgs" / label / f"{i}.png"
            Image.fromarray(rng.integers(0, 255, (6, 5, 3), dtype=np.uint8), "RGB").save(path)
            files.append(path)
    data = load_image_folder(str(tmp_path / "imgs"), check_cache=str(tmp_path / "cache"))
    assert data.inputs.dtype == torch.uint8 and data.inputs.shape == (6, 3, 6, 5)
    expected = torch.stack([read_image(f, (6, 5), "RGB") for f in files])
    assert torch.equal(data.inputs, expected)
    assert data.targets.tolist() == [0, 0, 0, 1, 1, 1]
