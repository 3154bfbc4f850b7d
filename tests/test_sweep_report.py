"""`python -m dlrecipe.sweep_report <dir>` on real tiny studies (journal file and SQLite): the
table, the summary, the best trial's overrides and the plots hold the study's own numbers.

    pytest tests/test_sweep_report.py -q

The studies are made with Optuna directly (no training): the report reads only the storage.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from dlrecipe.sweep.storage import make_storage
from dlrecipe.sweep_report import main

SPACE = {"model.optimizer.lr": FloatDistribution(1e-4, 1.0, log=True),
         "data.batch_size": CategoricalDistribution([16, 32])}  # fmt: skip
TRIALS = [({"model.optimizer.lr": 0.001, "data.batch_size": 16}, 0.52),
          ({"model.optimizer.lr": 0.01, "data.batch_size": 32}, 0.31),
          ({"model.optimizer.lr": 0.1, "data.batch_size": 16}, 0.47)]  # fmt: skip


def _study(storage: str, name: str) -> optuna.Study:
    """Three finished trials with known parameters and values, and one that failed."""
    study = optuna.create_study(
        study_name=name, storage=make_storage(storage), direction="minimize"
    )
    for params, value in TRIALS:
        study.enqueue_trial(params)
        trial = study.ask(SPACE)
        study.tell(trial, value)
    study.tell(study.ask(SPACE), state=TrialState.FAIL)
    return study


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_sweep_report_writes_the_studys_numbers(tmp_path, kind):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    if kind == "journal":  # the default: the sweep directory's own study.journal
        study, argv = _study(str(sweep / "study.journal"), "tiny"), [str(sweep)]
    else:
        url = f"sqlite:///{tmp_path / 'studies.db'}"
        study = _study(url, "tiny_sql")
        argv = [str(sweep), "--storage", url, "--study", "tiny_sql"]
    import matplotlib

    def style() -> dict:  # the backend is chosen (Agg) on first use, the look must not change
        return {k: v for k, v in matplotlib.rcParams.items() if not k.startswith("backend")}

    before = style()
    assert main(argv) == 0
    # Optuna's plots switch to the ggplot style; later figures of this process keep theirs
    assert style() == before

    table = pd.read_csv(sweep / "trials.csv")
    assert table["state"].tolist() == ["COMPLETE"] * 3 + ["FAIL"]
    assert table["value"][:3].tolist() == [value for _, value in TRIALS]
    assert table["params.model.optimizer.lr"][:3].tolist() == [0.001, 0.01, 0.1]

    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert summary["study_name"] == study.study_name
    assert summary["counts"]["COMPLETE"] == 3 and summary["counts"]["FAIL"] == 1
    assert summary["best_number"] == 1 and summary["best_value"] == 0.31
    assert summary["best_params"] == {"model.optimizer.lr": 0.01, "data.batch_size": 32}

    overrides = (sweep / "best_overrides.yaml").read_text().splitlines()
    assert {"- model.optimizer.lr=0.01", "- data.batch_size=32", "- hydra.mode=RUN"} <= set(
        overrides
    )

    assert "optimization_history.png" in {Path(p).name for p in summary["plots"]}
    for plot in summary["plots"]:
        assert (sweep / Path(plot).name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", plot
