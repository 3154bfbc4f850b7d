"""Resume after SIGKILL gives the uninterrupted run's metrics; resume= refuses what is not a run
and leaves a finished one alone; failed runs say why.

    pytest tests/test_resume_faults.py -q

The killed runs are real `python -m dlrecipe.train` processes (kill -9 once a checkpoint of
epoch >= 1 exists); everything else goes through the same command line in-process (Hydra's
main, so the run directory resolver and Hydra's own writes are exercised too).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dlrecipe.builders import build_data
from dlrecipe.csv_logs import read_metrics
from dlrecipe.data.loaders import epoch_permutation
from dlrecipe.train import main
from tests.conftest import run_main

pytestmark = pytest.mark.slow
EPOCHS = 30  # ~25 ms each: a kill after epoch 3 leaves the run most of its epochs to go
COMMON = ["experiment=wine_mlp", f"trainer.max_epochs={EPOCHS}", "data.batch_size=8",
          "callbacks.early_stopping=null", "report.enabled=false", "trainer.accelerator=cpu",
          "trainer.enable_progress_bar=false", "callbacks.progress_bar=null",
          "callbacks.model_summary=null", "extras.lint=false"]  # fmt: skip
KFOLD = ["data/split=kfold", "data.split.k=2"]


def cli(*args: str) -> int:
    """`python -m dlrecipe.train *args` in this process; the exit status."""
    try:
        return run_main(main, ["dlrecipe.train", *args])
    except Exception:  # a crash: from a shell, its traceback and exit 1
        return 1


def killed_run(run_dir: Path, watched: Path, *overrides: str) -> None:
    """A real training process, SIGKILLed once `watched` (a history.csv) shows three epochs done:
    last.ckpt is written after an epoch's history row, so it holds epoch 1 or later."""
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlrecipe.train", *COMMON, *overrides, f"hydra.run.dir={run_dir}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    deadline, training = time.time() + 300, False
    while time.time() < deadline and proc.poll() is None:
        if watched.is_file() and not training:  # training: lowest priority from now on, so
            os.setpriority(os.PRIO_PROCESS, proc.pid, 19)  # under load this watcher outpaces it
            training = True
        if training and len(watched.read_text().splitlines()) >= 4:
            break
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    epoch = torch.load(watched.parent / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]
    assert 1 <= epoch < EPOCHS - 1  # killed mid-run, with a checkpoint to continue from
    assert not (watched.parent / "summary.json").exists()


def metrics(run_dir: Path) -> dict[str, float]:
    if (run_dir / "cv_summary.json").is_file():
        summary = json.loads((run_dir / "cv_summary.json").read_text())
        return {**summary["mean"], **{f"ensemble {k}": v for k, v in summary["ensemble"].items()}}
    summary = json.loads((run_dir / "summary.json").read_text())
    return {**summary["val_metrics"], **summary["test_metrics"]}


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under root: (mtime, content hash)."""
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(root.rglob("*")) if p.is_file()
    }  # fmt: skip


@pytest.fixture(scope="module")
def single_reference(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("reference") / "single"
    assert cli(*COMMON, f"hydra.run.dir={run}") == 0
    return run


@pytest.fixture(scope="module")
def kfold_reference(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("reference") / "kfold"
    assert cli(*COMMON, *KFOLD, f"hydra.run.dir={run}") == 0
    return run


def test_a_killed_run_resumes_in_its_directory_with_the_uninterrupted_metrics(
    tmp_path, single_reference
):
    run = tmp_path / "run"
    killed_run(run, run / "history.csv")
    original = (run / ".hydra" / "config.yaml").read_text()
    assert cli(f"resume={run}") == 0
    expected, got = metrics(single_reference), metrics(run)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key
    epochs = [int(r.split(",")[0]) for r in (run / "history.csv").read_text().splitlines()[1:]]
    assert epochs == list(range(EPOCHS))  # every epoch once: nothing lost, nothing repeated
    assert json.loads((run / "summary.json").read_text())["epochs_run"] == EPOCHS
    assert (run / ".hydra" / "config.yaml").read_text() == original  # the run's own config kept
    logged = read_metrics(run / "csv")  # csv/metrics.csv, then the resumed fit's csv/version_0/
    val_epochs = set(logged.dropna(subset=["val/loss"])["epoch"].astype(int))
    # the CSV rows survive the kill (epoch EPOCHS: the final validation of the best checkpoint)
    assert set(range(EPOCHS)) <= val_epochs <= set(range(EPOCHS + 1))


def test_a_killed_kfold_run_keeps_finished_folds_and_continues_the_killed_one(
    tmp_path, kfold_reference
):
    run = tmp_path / "run"
    killed_run(run, run / "fold1" / "history.csv", *KFOLD)
    finished_fold = snapshot(run / "fold0")
    assert (run / "fold0" / "summary.json").is_file()
    assert cli(f"resume={run}") == 0
    assert snapshot(run / "fold0") == finished_fold  # kept as it was, not trained again
    expected, got = metrics(kfold_reference), metrics(run)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key
    history = (run / "fold1" / "history.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in history] == list(range(EPOCHS))  # continued


def test_resuming_a_finished_run_changes_nothing(single_reference, capsys):
    before = snapshot(single_reference)
    assert cli(f"resume={single_reference}") == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "has finished" in out[0] and "trainer.max_epochs" in out[0]
    assert snapshot(single_reference) == before  # summary.json too: same bytes, same mtime
    assert not (single_reference / ".hydra_resume").exists()


def test_raising_max_epochs_continues_a_finished_run(tmp_path):
    run = tmp_path / "run"
    short = [*COMMON[:1], *COMMON[2:], "trainer.max_epochs=2"]
    assert cli(*short, f"hydra.run.dir={run}") == 0
    assert cli(f"resume={run}", "trainer.max_epochs=3") == 0
    assert json.loads((run / "summary.json").read_text())["epochs_run"] == 3
    history = (run / "history.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in history] == [0, 1, 2]


def _not_a_dlrecipe_checkpoint(root: Path) -> Path:
    (root / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": {}}, root / "checkpoints" / "last.ckpt")
    return root


@pytest.mark.parametrize(
    "make, says",
    [
        (lambda t: t / "missing", "nothing is there"),
        (lambda t: (t / "notes.txt", (t / "notes.txt").write_text("mine"))[0], "but a file"),
        (lambda t: (t / "photos", (t / "photos").mkdir(), (t / "photos" / "a.png").write_bytes(b"x"))[0],
         "is not a dlrecipe run"),
        (lambda t: _not_a_dlrecipe_checkpoint(t / "lightning_run"), "holds no dlrecipe config"),
    ],
    ids=["missing", "a file", "a folder of something else", "another tool's checkpoint"],
)  # fmt: skip
def test_resume_refuses_what_is_not_a_run_and_writes_nothing(tmp_path, capsys, make, says):
    target = make(tmp_path)
    paths, files = sorted(tmp_path.rglob("*")), snapshot(tmp_path)
    assert cli(f"resume={target}") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0] and "resume=" in err[0], err
    assert sorted(tmp_path.rglob("*")) == paths  # no directory, no .hydra_resume/, no train.log
    assert snapshot(tmp_path) == files


def test_a_mistake_refused_at_once_leaves_no_run_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["data=csv", "data.source.path=missing.csv", "data.source.target=y", "model=mlp"]
    assert cli(*args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.source.path" in err[0]
    assert list(tmp_path.iterdir()) == []  # no outputs/<task>/<date>/<time>/ orphan


def test_a_failed_run_keeps_the_reason_in_its_directory(tmp_path):
    # An explicit hydra.run.dir may be the user's own folder: kept, with the reason in it.
    run = tmp_path / "run"
    assert cli("data=csv", "data.source.path=missing.csv", "data.source.target=y", "model=mlp", f"hydra.run.dir={run}") == 2  # fmt: skip
    (reason,) = (run / "error.txt").read_text().splitlines()
    assert "data.source.path" in reason and "missing.csv" in reason
    assert reason in (run / "train.log").read_text()


def test_a_crashed_run_keeps_what_went_wrong(tmp_path):
    run = tmp_path / "run"
    args = ["experiment=wine_mlp", "trainer.max_epochs=1", "callbacks.early_stopping.monitor=val/nope",
            "report.enabled=false", "trainer.enable_progress_bar=false", f"hydra.run.dir={run}"]  # fmt: skip
    code = cli(*args)
    assert code != 0
    text = (run / "error.txt").read_text()
    assert "val/nope" in text and "val/nope" in (run / "train.log").read_text()
    if code != 2:  # a crash, not a mistake translated into one line: the traceback is kept
        assert "Traceback" in text


def test_worker_augmented_batches_come_in_the_seed_and_epoch_order(make_cfg):
    # Images augmented in DataLoader workers: the order, like the fast path's, depends on
    # (seed, epoch) only, so a resumed run's epoch 3 is the uninterrupted run's epoch 3.
    data = build_data(make_cfg("data/augmentation=light", "data.num_workers=1"))
    data.setup("fit")
    assert data.augments_in_workers
    sampler = data.train_dataloader().sampler
    sampler.set_epoch(3)  # what Lightning does at each epoch start, after a resume too
    assert list(sampler) == epoch_permutation(len(data.fold.train), data.seed, 3).tolist()
