"""lightning-hydra-template habits: tags, extras.print_config, debug=default, per-key help, and
where the configs come from (the repo's conf/ over the packaged copy; DLRECIPE_CONF over both).

    python -m pytest tests/test_habits.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dlrecipe import configs, keys
from dlrecipe.builders import CONF_DIR, build_loggers
from dlrecipe.errors import ConfigError
from dlrecipe.train import train

ROOT = Path(__file__).resolve().parents[1]


def test_tags_reach_the_summary_and_each_loggers_hparams_and_print_config_saves_the_tree(
    make_cfg, capsys
):
    cfg = make_cfg("experiment=wine_mlp", "trainer.max_epochs=1", "report.enabled=false",
                   "logger=many", "tags=[baseline,wine]", "extras.print_config=true")  # fmt: skip
    train(cfg)
    run = Path(cfg.paths.output_dir)
    assert json.loads((run / "summary.json").read_text())["tags"] == ["baseline", "wine"]
    for logger in ("csv", "tensorboard"):  # Lightning's hparams.yaml of each logger
        assert yaml.safe_load((run / logger / "hparams.yaml").read_text())["tags"] == [
            "baseline",
            "wine",
        ]
    tree = (run / "config_tree.txt").read_text()
    assert tree.startswith("CONFIG") and "hidden:" in tree and "- baseline" in tree
    assert "├── data" in capsys.readouterr().out  # printed at start, not only saved


def test_without_print_config_no_tree_is_written(make_cfg):
    cfg = make_cfg("experiment=wine_mlp", "trainer.max_epochs=1", "report.enabled=false",
                   "logger=none")  # fmt: skip
    train(cfg)
    run = Path(cfg.paths.output_dir)
    assert json.loads((run / "summary.json").read_text())["tags"] == []
    assert not (run / "config_tree.txt").exists()


def test_wandb_run_carries_the_tags(make_cfg):
    import wandb

    (logger,) = build_loggers(make_cfg("logger=wandb", "tags=[baseline,wine]"))
    try:
        assert tuple(logger.experiment.tags) == ("baseline", "wine")
    finally:
        wandb.finish()


def test_tags_that_are_not_a_list_stop_with_the_form_to_type(make_cfg):
    with pytest.raises(ConfigError, match=r"tags=.*must be a list.*tags=\[baseline,wine\]"):
        train(make_cfg("tags=baseline"))


def test_debug_default_is_the_templates_debug_run(make_cfg):
    cfg = make_cfg("debug=default", quick=False)
    assert cfg.task_name == "debug"
    assert cfg.trainer.max_epochs == 1 and cfg.trainer.accelerator == "cpu"
    assert cfg.trainer.devices == 1 and cfg.trainer.detect_anomaly is True
    assert not cfg.logger and cfg.report.enabled is False
    # it runs (1 epoch) in tests/test_debug_presets.py with the other presets


def _comment(path: Path, key: str) -> str:
    line = next(ln for ln in path.read_text().splitlines() if ln.strip().startswith(f"{key}:"))
    return line.split("#", 1)[1].strip()


def test_keys_prints_each_key_with_its_why_comment(capsys):
    assert keys.main(["model.optimizer"]) == 0
    out = capsys.readouterr().out.splitlines()
    lr = _comment(CONF_DIR / "model/optimizer/adamw.yaml", "lr")
    assert "model.optimizer.lr = 0.003  # " + lr in out
    assert all(line.startswith("model.optimizer.") for line in out)

    assert keys.main(["model.optimizer", "model/optimizer=sgd"]) == 0
    sgd = _comment(CONF_DIR / "model/optimizer/sgd.yaml", "momentum")
    assert any(ln.endswith(sgd) for ln in capsys.readouterr().out.splitlines())


def test_keys_an_experiments_comment_explains_its_value(capsys):
    assert keys.main(["model.net", "experiment=wine_mlp"]) == 0
    hidden = _comment(CONF_DIR / "experiment/wine_mlp.yaml", "hidden")
    assert f"model.net.hidden = [64, 32]  # {hidden}" in capsys.readouterr().out.splitlines()


def test_keys_unknown_group_is_one_line(capsys):
    assert keys.main(["modle"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'modle' is not a config group" in err


def test_the_repos_conf_wins_and_dlrecipe_conf_wins_over_it(monkeypatch, tmp_path):
    monkeypatch.delenv(configs.ENV_VAR, raising=False)
    assert configs.conf_dir() == ROOT / "conf"  # a cloned template: the conf/ users edit
    monkeypatch.setenv(configs.ENV_VAR, str(tmp_path))
    assert configs.conf_dir() == tmp_path
    with pytest.raises(ConfigError, match=rf"{configs.ENV_VAR}=.*has no train.yaml"):
        configs.check_conf_dir()
    (tmp_path / "train.yaml").write_text("seed: 1\n")
    assert configs.check_conf_dir() == tmp_path
