"""python -m dlrecipe.compare: real runs overlaid in one figure, ranked in the metric's direction,
labelled by the overrides that differ; bad inputs end in one line with exit 2."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from dlrecipe.builders import compose
from dlrecipe.compare import compare, main
from dlrecipe.train import main as train_main
from dlrecipe.train import train
from tests.conftest import QUICK, run_main

RUN = ["experiment=wine_mlp", "logger=none", "report.enabled=false"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for batch in (16, 64):
        train(compose([*QUICK, f"paths.output_dir={root / f'bs{batch}'}", *RUN,
                       f"data.batch_size={batch}"]))  # fmt: skip
    return root / "bs16", root / "bs64"


def test_two_runs_overlaid_and_ranked_by_validation_loss(two_runs, tmp_path):
    table = compare(list(two_runs), tmp_path / "cmp")
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 10_000
    saved = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert list(saved.run) == list(table.run) and set(saved.run) == {
        "bs16",
        "bs64",
    }  # no overrides.yaml
    losses = {d.name: json.loads((d / "summary.json").read_text())["val_metrics"]["val/loss"] for d in two_runs}  # fmt: skip
    assert list(saved["val/loss"]) == pytest.approx(sorted(losses.values()))  # lower first
    assert list(saved.run) == sorted(losses, key=losses.get)
    by_acc = compare(list(two_runs), tmp_path / "acc", metric="val/acc")
    assert list(by_acc["val/acc"]) == sorted(by_acc["val/acc"], reverse=True)  # higher first


@pytest.mark.slow
def test_a_multirun_directory_is_labelled_by_its_sweep(tmp_path, capsys):
    multi = tmp_path / "multi"
    # `python -m dlrecipe.train -m ...`: its main() in this process (Hydra's basic launcher)
    args = ["dlrecipe-train", "-m", *RUN, "trainer.max_epochs=2",
            "data.batch_size=16,64", f"hydra.sweep.dir={multi}", "trainer.enable_progress_bar=false",
            "callbacks.progress_bar=null"]  # fmt: skip
    assert run_main(train_main, args, cwd=tmp_path) == 0
    capsys.readouterr()  # only compare's own output below
    assert main([str(multi), "--out", str(tmp_path / "cmp")]) == 0
    saved = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert set(saved.run) == {
        "data.batch_size=16",
        "data.batch_size=64",
    }  # the shared ones left out
    assert "runs by val/loss (lower is better)" in capsys.readouterr().out


def test_bad_inputs_exit_2_with_one_line(two_runs, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "summary.json").write_text("{not json")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "compare.png").write_text("mine")
    cases = [
        ([str(tmp_path / "missing"), str(two_runs[0])], "does not exist"),
        ([str(empty)], "holds no runs"),
        ([str(two_runs[0])], "at least two runs"),
        ([str(broken), str(two_runs[0])], "summary.json is not valid JSON"),
        ([*map(str, two_runs), "--out", str(taken)], "already holds a compare.png"),
        ([*map(str, two_runs), "--metric", "val/wobble"], "--metric val/wobble"),
    ]
    for argv, words in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err
    assert (taken / "compare.png").read_text() == "mine"  # never overwritten
