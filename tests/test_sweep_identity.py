"""A study keeps one search space and one set of fixed settings; a used-up budget is said aloud.

    python -m pytest tests/test_sweep_identity.py -q

Real sweeps in this process (wine MLP, one epoch, one trial each) and the real workers script.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import optuna
import pytest

from dlrecipe.sweep.identity import FIXED_ATTR, SPACE_ATTR
from dlrecipe.sweep.storage import make_storage
from tests.test_sweep_faults import STUDY, in_process

ROOT = Path(__file__).resolve().parents[1]
NAMES = "hydra.sweeper.study_name=wine_mlp_search_v2"  # the way out the line must offer


def trials(tmp_path: Path) -> list:
    storage = make_storage(str(tmp_path / "sweep" / "study.journal"))
    return optuna.load_study(study_name=STUDY, storage=storage).trials


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-3000:]
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.slow
def test_a_changed_space_or_fixed_setting_stops_and_the_same_settings_continue(
    tmp_path, monkeypatch, capfd
):
    assert in_process(monkeypatch, tmp_path, "hydra.sweeper.n_trials=1") == 0
    capfd.readouterr()
    attrs = optuna.load_study(
        study_name=STUDY, storage=make_storage(str(tmp_path / "sweep" / "study.journal"))
    ).user_attrs
    assert "model.net.dropout" in attrs[SPACE_ATTR] and "trainer.max_epochs" in attrs[FIXED_ATTR]

    # one more searched key on the command line (as the README shows) -> one line, nothing run
    code = in_process(
        monkeypatch, tmp_path, "hydra.sweeper.n_trials=2", "data.batch_size=choice(16,32)"
    )
    line = one_line(capfd.readouterr().err)
    assert code == 2 and "a different search space" in line and "added data.batch_size" in line
    assert NAMES in line
    # a different fixed setting -> the same kind of line, naming the key
    code = in_process(monkeypatch, tmp_path, "hydra.sweeper.n_trials=2", "data.batch_size=16")
    line = one_line(capfd.readouterr().err)
    assert code == 2 and "fixed settings" in line and "data.batch_size" in line and NAMES in line
    assert len(trials(tmp_path)) == 1  # neither mixed a trial in

    # the same space and settings (only the budget and the progress bar differ) -> continues
    code = in_process(
        monkeypatch, tmp_path, "hydra.sweeper.n_trials=2", "trainer.enable_progress_bar=true"
    )
    assert code == 0, capfd.readouterr().err[-3000:]
    assert [t.state.name for t in trials(tmp_path)] == ["COMPLETE", "COMPLETE"]


@pytest.mark.slow
def test_a_study_with_its_n_trials_says_so_in_one_line(tmp_path, monkeypatch, capfd):
    assert in_process(monkeypatch, tmp_path, "hydra.sweeper.n_trials=1") == 0
    capfd.readouterr()
    assert in_process(monkeypatch, tmp_path, "hydra.sweeper.n_trials=1") == 0
    out, err = capfd.readouterr()
    wanted = f"study '{STUDY}' already has 1 of hydra.sweeper.n_trials=1 trials"
    assert sum(wanted in line and "raise hydra.sweeper.n_trials" in line
               for line in (out + err).splitlines()) == 1  # fmt: skip
    assert len(trials(tmp_path)) == 1


def workers(script: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    environment.update({"LOG_DIR": str(tmp_path / "logs"), **env})
    return subprocess.run(["bash", str(script), "1", "hparams_search=wine_mlp_search"], cwd=tmp_path,
                          env=environment, capture_output=True, text=True, timeout=60)  # fmt: skip


def test_workers_script_without_the_project_venv_stops_with_one_line(tmp_path):
    copy = tmp_path / "clone" / "scripts" / "sweep_workers.sh"  # a checkout with no .venv
    copy.parent.mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "sweep_workers.sh", copy)
    result = workers(copy, tmp_path)
    line = one_line(result.stderr)
    assert result.returncode == 2 and ".venv/bin/python" in line and "PYTHON=" in line
    assert not (tmp_path / "logs").exists()  # stopped before starting any worker
    # an explicit PYTHON that is not there is named, not replaced by the system python
    result = workers(ROOT / "scripts" / "sweep_workers.sh", tmp_path, PYTHON=str(tmp_path / "nope"))
    line = one_line(result.stderr)
    assert result.returncode == 2 and f"PYTHON={tmp_path / 'nope'}" in line
