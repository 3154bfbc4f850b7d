"""Every Lightning Trainer flag can be set as trainer.<flag>=... (no leading +); typos fail by name.

pytest tests/test_trainer_flags.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

from dlrecipe.builders import build_data, check_trainer_keys, compose
from dlrecipe.errors import ConfigError
from dlrecipe.train import main, train
from tests.conftest import run_main


def test_a_flag_missing_from_the_yaml_is_accepted_and_reaches_the_trainer(make_cfg):
    cfg = make_cfg("experiment=wine_mlp", "trainer.max_epochs=1", "trainer.limit_train_batches=5", "data.batch_size=8",
                   "report.enabled=false", "logger=none")  # fmt: skip
    train(cfg)
    summary = json.loads((Path(cfg.paths.output_dir) / "summary.json").read_text())
    assert summary["train_steps"] == 5  # 5 of the epoch's 15 batches, as Lightning was told


def test_a_mistyped_flag_fails_in_one_line_naming_it(tmp_path, capfd, monkeypatch):
    cfg = compose(["trainer.limitt_train_batches=5"])  # composes: the node is open ...
    with pytest.raises(ConfigError, match=r"trainer\.limitt_train_batches .*did you mean "
                       r"trainer\.limit_train_batches\?"):  # fmt: skip
        check_trainer_keys(cfg.trainer)  # ... and the Trainer's signature refuses it
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    capfd.readouterr()  # the command's main() in this process: only what it prints
    args = [
        "dlrecipe-train",
        "trainer.limitt_train_batches=5",
        f"paths.output_dir={tmp_path / 'run'}",
    ]
    assert run_main(main, args, cwd=tmp_path) == 2
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "trainer.limitt_train_batches" in lines[0], err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_other_config_keys_stay_strict(make_cfg):
    with pytest.raises(ConfigCompositionException, match="seedd"):
        compose(["seedd=1"])
    # data and model are open like trainer (a code default needs no YAML line to be set), so a
    # misspelt argument is refused by name when the objects are built, before any data loads
    with pytest.raises(ConfigError, match=r"^data.batch_sise is not an argument .*data.batch_size"):
        build_data(make_cfg("data.batch_sise=1"))
