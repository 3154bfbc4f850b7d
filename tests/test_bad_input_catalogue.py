"""The bad-input catalogue: every entry point, one user mistake per case, one line and exit 2.

    pytest tests/test_bad_input_catalogue.py -q

Each case runs the real command (in-process: the same main() a console script calls, with
sys.argv set; a few as real processes) and asserts exit code 2, exactly one line on stderr that
names the key or file at fault, no traceback anywhere, and every file that existed before the
command byte-identical after it. docs/bad-input.md lists the categories.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from dlrecipe import cv_report, preview, sweep_report, train
from dlrecipe import eval as eval_cmd
from dlrecipe.builders import compose
from dlrecipe.checkpoints import load_checkpoint, run_config
from dlrecipe.edge import edge, print_error, user_message
from dlrecipe.report import __main__ as report
from tests.conftest import run_main

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["trainer.accelerator=cpu", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
         "callbacks.progress_bar=null", "callbacks.model_summary=null", "report.enabled=false",
         "logger=none"]  # fmt: skip
SWEEP = ["hparams_search=wine_mlp_search", "hydra.sweeper.n_trials=2"]
PG_SECRET = "hunter2pw"  # a password that must never be printed


@dataclass(frozen=True)
class Case:
    entry: str  # train | eval | predict | preview | report | cv_report | sweep_report | sweeper
    args: tuple[str, ...]  # {tmp}, {table}, {csv_run}, {csv_ckpt}, {img_run}, {img_ckpt} filled in
    names: str  # the key or file the one line must name
    setup: Callable[[Path], None] | None = None  # files the mistake needs, made in the case dir


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda tmp: (
        (tmp / name).parent.mkdir(parents=True, exist_ok=True) or (tmp / name).write_bytes(data)
    )


def _images(tmp: Path, corrupt: bool = False) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp / "imgs" / c).mkdir(parents=True, exist_ok=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(
                tmp / "imgs" / c / f"{i}.png"
            )
    if corrupt:
        (tmp / "imgs" / "a" / "broken.png").write_bytes(b"this is not a png")


def _few_rows(tmp: Path) -> None:
    pd.DataFrame({"x": range(6), "y": [0, 1] * 3}).to_csv(tmp / "few.csv", index=False)


def _moved_run(tmp: Path, run: Path) -> Path:
    """A copy of a finished run whose training CSV is no longer where the run read it."""
    shutil.copytree(run, tmp / "moved")
    ckpt = tmp / "moved" / "checkpoints" / "last.ckpt"
    cfg = run_config(ckpt, load_checkpoint(ckpt))
    cfg.data.source.path = str(tmp / "gone" / "table.csv")
    (tmp / "moved" / ".hydra").mkdir(exist_ok=True)
    OmegaConf.save(cfg, tmp / "moved" / ".hydra" / "config.yaml")
    return ckpt


EMPTY = _write("empty.csv", b"")
GARBLED = _write("garbled.csv", b'a,b\n1,"2\n')
JUNK_CKPT = _write("junk.ckpt", b"not a checkpoint at all")
NOTES = _write("notes.txt", b"my own notes\n")
CSV_RUN = "{csv_run}"

C = Case
# fmt: off
CASES: dict[str, Case] = {
    # train: Hydra's own errors, typed values, data, model, checkpoints, monitoring, the OS
    "train-unknown-key": C("train", ("foo=1",), "foo"),
    "train-misspelt-key": C("train", ("trainer.maxepochs=3",), "trainer.maxepochs"),
    "train-misspelt-net-argument": C("train", ("model.net.dropuot=0.1",), "model.net.dropuot"),
    "train-misspelt-source-argument": C("train", ("data.source.nmae=wine",), "data.source.nmae"),
    "train-misspelt-group": C("train", ("modle=mlp",), "modle"),
    "train-unknown-model": C("train", ("model=transformer",), "model=transformer"),
    "train-unknown-split": C("train", ("data/split=loo",), "data/split=loo"),
    "train-unknown-experiment": C("train", ("experiment=nope",), "experiment=nope"),
    "train-unknown-optimizer": C("train", ("model/optimizer=lbfgs",), "model/optimizer=lbfgs"),
    "train-unknown-logger": C("train", ("logger=mlflow",), "logger=mlflow"),
    "train-unknown-trainer": C("train", ("trainer=tpu",), "trainer=tpu"),
    "train-bad-override-syntax": C("train", ("trainer.max_epochs=[1",), "trainer.max_epochs"),
    "train-list-without-multirun": C("train", ("seed=1,2",), "seed=1,2"),
    "train-plus-on-existing-key": C("train", ("+seed=3",), "seed"),
    "train-dangling-interpolation": C("train", ("seed=${{nothing}}",), "seed"),
    "train-seed-not-a-number": C("train", ("seed=abc",), "seed"),
    "train-max-epochs-fraction": C("train", ("trainer.max_epochs=1.5",), "trainer.max_epochs"),
    "train-batch-size-text": C("train", ("data.batch_size=big",), "data.batch_size"),
    "train-batch-size-zero": C("train", ("data.batch_size=0",), "data.batch_size"),
    "train-lr-zero": C("train", ("model.optimizer.lr=0",), "model.optimizer.lr"),
    "train-split-leaves-nothing": C("train", ("data.split.val_frac=0.6", "data.split.test_frac=0.4"), "data.split.val_frac"),
    "train-cnn-too-deep": C("train", ("model.net.channels=[8,8,8,8]",), "model.net.channels"),
    "train-cnn-on-a-table": C("train", ("data=wine",), "model=cnn"),
    "train-mse-on-classes": C("train", ("experiment=wine_mlp", "model.loss=mse"), "model.loss"),
    "train-monitor-not-logged": C("train", ("experiment=wine_mlp", "monitor.metric=val/auc"), "monitor.metric"),
    "train-objective-not-logged": C("train", ("experiment=wine_mlp", "optimized_metric=val/nope"), "optimized_metric"),
    "train-csv-without-path": C("train", ("data=csv", "data.source.target=y", "model=mlp"), "data.source.path"),
    "train-csv-missing": C("train", ("data=csv", "data.source.path={tmp}/nope.csv", "data.source.target=y", "model=mlp"), "data.source.path"),
    "train-csv-empty": C("train", ("data=csv", "data.source.path={tmp}/empty.csv", "data.source.target=y", "model=mlp"), "data.source.path", EMPTY),
    "train-csv-garbled": C("train", ("data=csv", "data.source.path={tmp}/garbled.csv", "data.source.target=y", "model=mlp"), "data.source.path", GARBLED),
    "train-csv-unknown-target": C("train", ("data=csv", "data.source.path={table}", "data.source.target=price", "model=mlp"), "data.source.target"),
    "train-csv-unknown-feature": C("train", ("data=csv", "data.source.path={table}", "data.source.target=label", "data.source.features=[a,zz]", "model=mlp"), "data.source.features"),
    "train-csv-unknown-groups": C("train", ("data=csv", "data.source.path={table}", "data.source.target=label", "data.source.groups=who", "model=mlp"), "data.source.groups"),
    "train-csv-unknown-task": C("train", ("data=csv", "data.source.path={table}", "data.source.target=label", "data.source.task=ranking", "model=mlp"), "data.source.task"),
    "train-kfold-more-folds-than-rows": C("train", ("data=csv", "data.source.path={tmp}/few.csv", "data.source.target=y", "model=mlp", "data/split=kfold", "data.split.k=20", "data.split.test_frac=0"), "data.split", _few_rows),
    "train-image-folder-missing": C("train", ("data=image_folder", "data.source.root={tmp}/photos"), "data.source.root"),
    "train-image-folder-corrupt": C("train", ("data=image_folder", "data.source.root={tmp}/imgs", "data.num_workers=0"), "broken.png", lambda t: _images(t, True)),
    "train-image-size-markup": C("train", ("data=image_folder", "data.source.root={tmp}/imgs", "data.source.image_size=[1,2,3]"), "[height, width]", _images),
    "train-multirun-job-mistake": C("train", ("-m", "data=csv", "data.source.path={tmp}/nope.csv", "data.source.target=y", "model=mlp", "seed=1,2"), "data.source.path"),
    "train-two-lint-errors": C("train", ("data=image_folder", "data.source.root={tmp}", "data.source.val_root={tmp}", "monitor.mode=sideways"), "data.source.val_root"),
    "train-ckpt-missing": C("train", ("ckpt_path={tmp}/gone.ckpt",), "ckpt_path"),
    "train-ckpt-not-a-checkpoint": C("train", ("ckpt_path={tmp}/junk.ckpt",), "ckpt_path", JUNK_CKPT),
    "train-ckpt-of-another-model": C("train", ("ckpt_path={csv_ckpt}",), "ckpt_path"),
    "train-output-dir-not-allowed": C("train", ("hydra.run.dir=/sys/dlrecipe_run",), "/sys/dlrecipe_run"),
    "train-paths-output-dir-not-allowed": C("train", ("experiment=iris_mlp", "paths.output_dir=/sys/dlrecipe_out"), "paths.output_dir=/sys/dlrecipe_out"),
    "train-output-dir-is-a-file": C("train", ("hydra.run.dir={tmp}/notes.txt",), "notes.txt", NOTES),
    "train-output-dir-under-a-file": C("train", ("hydra.run.dir={tmp}/notes.txt/run",), "notes.txt", NOTES),
    # eval: the checkpoint, its run, and data that moved
    "eval-without-ckpt-path": C("eval", (), "ckpt_path"),
    "eval-ckpt-missing": C("eval", ("ckpt_path={tmp}/gone.ckpt",), "ckpt_path"),
    "eval-ckpt-not-a-checkpoint": C("eval", ("ckpt_path={tmp}/junk.ckpt",), "ckpt_path", JUNK_CKPT),
    "eval-ckpt-is-a-folder": C("eval", ("ckpt_path={tmp}",), "ckpt_path"),
    "eval-unknown-key": C("eval", ("ckpt_path={csv_ckpt}", "epochs=3"), "epochs"),
    "eval-unknown-trainer": C("eval", ("ckpt_path={csv_ckpt}", "trainer=tpu"), "trainer=tpu"),
    "eval-max-epochs-fraction": C("eval", ("ckpt_path={csv_ckpt}", "trainer.max_epochs=0.5"), "trainer.max_epochs"),
    "eval-data-moved": C("eval", ("ckpt_path={tmp}/moved/checkpoints/last.ckpt",), "data.source.path=", lambda t: _moved_run(t, CASE_RUNS["csv_run"])),
    "eval-data-path-wrong": C("eval", ("ckpt_path={csv_ckpt}", "data.source.path={tmp}/elsewhere.csv"), "data.source.path"),
    "eval-data-root-on-a-table-run": C("eval", ("ckpt_path={csv_ckpt}", "data.source.root={tmp}"), "data.source.root"),
    "eval-output-dir-not-allowed": C("eval", ("ckpt_path={csv_ckpt}", "hydra.run.dir=/sys/dlrecipe_eval"), "/sys/dlrecipe_eval"),
    # predict (eval with predict.input)
    "predict-input-missing": C("predict", ("ckpt_path={csv_ckpt}", "predict.input={tmp}/new.csv"), "predict.input"),
    "predict-input-empty": C("predict", ("ckpt_path={csv_ckpt}", "predict.input={tmp}/empty.csv"), "predict.input", EMPTY),
    "predict-input-garbled": C("predict", ("ckpt_path={csv_ckpt}", "predict.input={tmp}/garbled.csv"), "predict.input", GARBLED),
    "predict-input-header-only": C("predict", ("ckpt_path={csv_ckpt}", "predict.input={tmp}/header.csv"), "predict.input", _write("header.csv", b"a,b\n")),
    "predict-input-with-inf": C("predict", ("ckpt_path={csv_ckpt}", "predict.input={tmp}/inf.csv"), "predict.input", _write("inf.csv", b"a,b\n1,2\ninf,0\n")),
    "predict-input-lacks-features": C("predict", ("ckpt_path={csv_ckpt}", "predict.input={tmp}/other.csv"), "predict.input", _write("other.csv", b"q,r\n1,2\n")),
    "predict-folder-for-a-table-model": C("predict", ("ckpt_path={csv_ckpt}", "predict.input={tmp}"), "predict.input"),
    "predict-output-elsewhere": C("predict", ("ckpt_path={csv_ckpt}", "predict.input={table}", "predict.output={tmp}/notes.txt"), "predict.output", NOTES),
    "predict-output-in-a-folder": C("predict", ("ckpt_path={csv_ckpt}", "predict.input={table}", "predict.output=sub/p.csv"), "predict.output"),
    "predict-table-for-an-image-model": C("predict", ("ckpt_path={img_ckpt}", "predict.input={table}"), "predict.input"),
    "predict-folder-without-images": C("predict", ("ckpt_path={img_ckpt}", "predict.input={tmp}/none"), "predict.input", _write("none/readme.txt", b"no images")),
    "predict-corrupt-image": C("predict", ("ckpt_path={img_ckpt}", "predict.input={tmp}/imgs"), "broken.png", lambda t: _images(t, True)),
    # preview
    "preview-a-table": C("preview", ("data=wine",), "data=wine"),
    "preview-unknown-key": C("preview", ("preview.rows=3",), "preview.rows"),
    "preview-samples-text": C("preview", ("preview.samples=many",), "preview.samples"),
    "preview-unknown-augmentation": C("preview", ("data/augmentation=extreme",), "data/augmentation=extreme"),
    "preview-image-folder-missing": C("preview", ("data=image_folder", "data.source.root={tmp}/photos"), "data.source.root"),
    "preview-image-size-markup": C("preview", ("data=image_folder", "data.source.root={tmp}/imgs", "data.source.image_size=[0,8]"), "[height, width]", _images),
    "preview-seed-not-a-number": C("preview", ("seed=x1",), "seed"),
    "preview-output-under-a-file": C("preview", ("hydra.run.dir={tmp}/notes.txt/p",), "notes.txt", NOTES),
    # report
    "report-no-run-dir": C("report", (), "run_dir"),
    "report-run-dir-missing": C("report", ("{tmp}/nowhere",), "nowhere"),
    "report-run-dir-empty": C("report", ("{tmp}",), "checkpoints"),
    "report-worst-k-text": C("report", ("{tmp}", "--worst-k", "many"), "--worst-k"),
    "report-unknown-flag": C("report", ("{tmp}", "--colour"), "--colour"),
    "report-summary-corrupt": C("report", ("{tmp}",), "summary.json", _write("summary.json", b'{"best_checkpoint": ')),
    "report-ckpt-not-a-checkpoint": C("report", ("{tmp}",), "best-epoch001.ckpt", _write("checkpoints/best-epoch001.ckpt", b"junk")),
    # cv_report
    "cv-report-no-dir": C("cv_report", (), "run_dir"),
    "cv-report-dir-missing": C("cv_report", ("{tmp}/nowhere",), "nowhere"),
    "cv-report-no-folds": C("cv_report", ("{tmp}",), "fold"),
    "cv-report-metric-without-value": C("cv_report", ("{tmp}", "--metric"), "--metric"),
    "cv-report-unknown-flag": C("cv_report", ("{tmp}", "--folds", "3"), "--folds"),
    "cv-report-summary-corrupt": C("cv_report", ("{tmp}",), "summary.json", _write("fold0/summary.json", b"{not json")),
    # sweep_report
    "sweep-report-no-dir": C("sweep_report", (), "sweep_dir"),
    "sweep-report-no-study": C("sweep_report", ("{tmp}",), "study.journal"),
    "sweep-report-storage-missing": C("sweep_report", ("{tmp}", "--storage", "{tmp}/x.journal"), "x.journal"),
    "sweep-report-summary-corrupt": C("sweep_report", ("{tmp}",), "sweep_summary.json", _write("sweep_summary.json", b"[1, 2")),
    "sweep-report-unknown-flag": C("sweep_report", ("{tmp}", "--trials", "3"), "--trials"),
    "sweep-report-database-down": C("sweep_report", ("{tmp}", "--storage", f"postgresql+psycopg://me:{PG_SECRET}@127.0.0.1:9/db"), "storage"),
    # the sweeper (train with hparams_search): its settings, objective and search space
    "sweeper-no-trials": C("sweeper", (*SWEEP, "hydra.sweeper.n_trials=0"), "hydra.sweeper.n_trials"),
    "sweeper-trials-text": C("sweeper", (*SWEEP, "hydra.sweeper.n_trials=lots"), "n_trials"),
    "sweeper-failure-rate": C("sweeper", (*SWEEP, "hydra.sweeper.max_failure_rate=2"), "hydra.sweeper.max_failure_rate"),
    "sweeper-unknown-sampler": C("sweeper", (*SWEEP, "hydra/sweeper/sampler=annealing"), "hydra/sweeper/sampler=annealing"),
    "sweeper-unknown-preset": C("sweeper", ("hparams_search=everything",), "hparams_search=everything"),
    "sweeper-wrong-direction": C("sweeper", (*SWEEP, "hydra.sweeper.direction=maximize"), "hydra.sweeper.direction"),
    "sweeper-test-objective": C("sweeper", (*SWEEP, "optimized_metric=test/acc", "hydra.sweeper.direction=maximize"), "optimized_metric"),
    "sweeper-bad-search-space": C("sweeper", (*SWEEP, "model.optimizer.lr=between(1,2)"), "model.optimizer.lr"),
    "sweeper-space-key-not-in-config": C("sweeper", (*SWEEP, "model.optimizer.lrr=interval(0.001,0.1)"), "model.optimizer.lrr"),
    "sweeper-space-interval-inverted": C("sweeper", (*SWEEP, "model.net.dropout=interval(0.5,0.1)"), "model.net.dropout"),
    "sweeper-unknown-setting": C("sweeper", (*SWEEP, "hydra.sweeper.trials=3"), "hydra.sweeper.trials"),
    "sweeper-database-down": C("sweeper", (*SWEEP, f"hydra.sweeper.storage=postgresql+psycopg://me:{PG_SECRET}@127.0.0.1:9/db"), "hydra.sweeper.storage"),
}
# fmt: on
CASE_RUNS: dict[str, Path] = {}  # filled by the runs fixture: finished runs the cases point at


def _train_run(out: Path, *overrides: str) -> Path:
    train.train(compose([*QUICK, f"paths.output_dir={out}", *overrides]))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two finished one-epoch runs: a CSV table model and an image-folder CNN."""
    base = tmp_path_factory.mktemp("runs")
    table = base / "table.csv"
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=80), rng.normal(size=80)
    pd.DataFrame({"a": a, "b": b, "label": np.where(a + b > 0, "yes", "no")}).to_csv(
        table, index=False
    )
    _images(base)
    csv_run = _train_run(base / "csv_run", "data=csv", f"data.source.path={table}", "data.source.target=label",
                         "model=mlp")  # fmt: skip
    img_run = _train_run(base / "img_run", "data=image_folder", f"data.source.root={base / 'imgs'}",
                         "data.num_workers=0", "model.net.channels=[4]")  # fmt: skip
    CASE_RUNS.update(csv_run=csv_run, img_run=img_run, table=table)
    return dict(CASE_RUNS)


ENTRY = {
    "train": train.main, "sweeper": train.main, "eval": eval_cmd.main, "predict": eval_cmd.main,
    "preview": preview.main, "report": report.main, "cv_report": cv_report.main,
    "sweep_report": sweep_report.main,
}  # fmt: skip
HYDRA_ENTRIES = {"train", "sweeper", "eval", "predict", "preview"}


def _snapshot(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _exit_code(entry: str, args: list[str]) -> int | str | None:
    """Run the entry point's main in this process, exactly as its console script would."""
    main = ENTRY[entry]
    if entry in HYDRA_ENTRIES:
        return run_main(main, [f"dlrecipe-{entry}", *args])
    try:
        return main(args)
    except SystemExit as stop:
        return stop.code


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_and_exit_2(name, runs, tmp_path, monkeypatch, capsys):
    case = CASES[name]
    if case.setup:
        case.setup(tmp_path)
    fill = {"tmp": tmp_path, "table": runs["table"], "csv_run": runs["csv_run"],
            "csv_ckpt": runs["csv_run"] / "checkpoints" / "last.ckpt",
            "img_run": runs["img_run"], "img_ckpt": runs["img_run"] / "checkpoints" / "last.ckpt"}  # fmt: skip
    args = [a.format(**fill) for a in case.args]
    before = {**_snapshot(tmp_path), **_snapshot(runs["csv_run"].parent)}
    monkeypatch.chdir(tmp_path)
    code = _exit_code(case.entry, args)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, f"exit {code}; stderr: {err[-2000:]}"
    assert "Traceback" not in out + err
    assert len(lines) == 1, f"{len(lines)} lines on stderr:\n{err}"
    assert lines[0].startswith("error: ") and case.names in lines[0], lines[0]
    assert PG_SECRET not in out + err
    for path, data in before.items():
        assert path.is_file() and path.read_bytes() == data, f"{path} was changed"


def test_the_catalogue_covers_every_entry_point():
    per_entry = {e: sum(c.entry == e for c in CASES.values()) for e in ENTRY}
    assert len(CASES) + len(SCRIPT_CASES) >= 80
    assert min(per_entry.values()) >= 5 and len(SCRIPT_CASES) >= 5, per_entry


# scripts/sweep_workers.sh (bash; the last case starts one real worker that refuses its input)
# fmt: off
SCRIPT_CASES = {
    "workers-no-arguments": ((), "N"),
    "workers-n-not-a-number": (("two", "hparams_search=wine_mlp_search"), "N='two'"),
    "workers-n-zero": (("0", "hparams_search=wine_mlp_search"), "N='0'"),
    "workers-no-overrides": (("2",), "hparams_search"),
    "workers-no-sweep": (("2", "seed=1"), "hparams_search"),
    "workers-log-dir-under-a-file": (("1", "hparams_search=wine_mlp_search"), "LOG_DIR"),
    "workers-every-worker-refuses": (("1", "hparams_search=everything"), "hparams_search=everything"),
}
# fmt: on


@pytest.mark.parametrize("name", list(SCRIPT_CASES))
def test_sweep_workers_script_mistakes(name, tmp_path):
    args, names = SCRIPT_CASES[name]
    NOTES(tmp_path)
    log_dir = tmp_path / ("notes.txt/logs" if "log-dir" in name else "logs")
    env = {**os.environ, "PYTHON": sys.executable, "LOG_DIR": str(log_dir)}
    result = subprocess.run(["bash", str(ROOT / "scripts" / "sweep_workers.sh"), *args],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and names in lines[0], lines
    assert "Traceback" not in result.stdout + result.stderr
    assert (tmp_path / "notes.txt").read_bytes() == b"my own notes\n"


@pytest.mark.parametrize(
    ("command", "names"),
    [
        (["dlrecipe-train", "seed=abc"], "seed"),
        (["-m", "dlrecipe.report", "{tmp}/nowhere"], "nowhere"),
    ],
)
def test_real_processes_print_one_line(command, names, tmp_path):
    """The console script and `python -m` print the same one line as the in-process cases."""
    if command[0].startswith("dlrecipe-"):  # the installed console script
        command = [str(Path(sys.executable).parent / command[0]), *command[1:]]
    else:
        command = [sys.executable, *command]
    args = [a.format(tmp=tmp_path) for a in command]
    result = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and names in lines[0], lines
    assert "Traceback" not in result.stdout + result.stderr


def test_eval_follows_moved_data_with_data_path(runs, tmp_path, monkeypatch, capsys):
    """The fix the moved-data message suggests works: data.source.path= re-points eval at the CSV."""
    ckpt = _moved_run(tmp_path, runs["csv_run"])
    monkeypatch.chdir(tmp_path)
    args = [f"ckpt_path={ckpt}", f"data.source.path={runs['table']}", "hydra.run.dir=ev"]
    assert _exit_code("eval", args) == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert 0.0 <= metrics["test/acc"] <= 1.0


def test_messages_keep_square_brackets(capsys):
    """Rich markup would swallow `[height, width]`; errors print it as written."""
    print_error("data.source.image_size=7 must be [height, width] or one int")
    assert capsys.readouterr().err.strip() == (
        "error: data.source.image_size=7 must be [height, width] or one int"
    )


def test_bugs_keep_their_traceback():
    """Only recognisable user mistakes are translated: a bug's error goes through unchanged."""
    with pytest.raises(RuntimeError, match="a bug"), edge(["seed=1"]):
        raise RuntimeError("a bug")
    with pytest.raises(KeyError), edge(["seed=1"]):  # our own code's KeyError is never the user's
        {}["missing"]
    missing = FileNotFoundError(2, "No such file or directory", "/internal/cache.bin")
    assert user_message(missing, ["seed=1"]) is None  # a file the user never named
    assert "data.source.path" in user_message(
        FileNotFoundError(2, "No such file or directory", "/x/t.csv"), ["data.source.path=/x/t.csv"]
    )
