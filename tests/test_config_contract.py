"""The config contract (issue #20): few keys, short files, one namespace per object.

    pytest tests/test_config_contract.py -q

Counted as a reader sees it: the default composed config's leaves (a list is one key; the open
`trainer` node only the flags it sets), and each data set's / model's YAML file in non-blank
lines, comments included (the strictest count: what a newcomer copies is what is measured).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from dlrecipe.builders import CONF_DIR, build_data, build_model, compose
from dlrecipe.configs import DATAMODULE_KEYS, upgrade_layout
from dlrecipe.data.datamodule import DataModule
from dlrecipe.errors import ConfigError
from dlrecipe.trust import trusted_config
from tests.readme_commands import snippet

MAX_KEYS, MAX_MODEL_LINES, MAX_DATA_LINES = 80, 8, 6


def leaf_keys(node: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            keys += leaf_keys(child, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def set_files(group: str) -> list[Path]:
    """A group's option files; default.yaml is the block they extend, not a set or model."""
    return sorted(p for p in (CONF_DIR / group).glob("*.yaml") if p.stem != "default")


def test_the_default_config_has_at_most_80_keys():
    keys = leaf_keys(compose())
    assert 20 < len(keys) <= MAX_KEYS, f"{len(keys)} keys: {keys}"
    assert not any(k.startswith("optuna.") for k in keys)  # the sweeper adds them per trial
    assert not any(k.endswith("fast_path") for k in keys)  # a constructor argument of the tests


@pytest.mark.parametrize("path", set_files("model"), ids=lambda p: p.stem)
def test_a_model_file_is_at_most_8_lines_and_extends_the_litmodel_block(path):
    text = path.read_text()
    assert len(lines(text)) <= MAX_MODEL_LINES, f"{path.name}: {len(lines(text))} lines"
    assert re.search(r"^defaults:.*\bdefault\b|^  - default\b", text, re.M), path.name


@pytest.mark.parametrize("path", set_files("data"), ids=lambda p: p.stem)
def test_a_data_file_is_at_most_6_lines_and_extends_the_datamodule_block(path):
    text = path.read_text()
    assert len(lines(text)) <= MAX_DATA_LINES, f"{path.name}: {len(lines(text))} lines"
    assert text.count("defaults: [default]") == 1, path.name
    assert "DataModule" not in OmegaConf.to_yaml(OmegaConf.load(path)), path.name  # said once


def test_the_readme_recipes_show_such_files():
    data, model = snippet("conf/data/penguins.yaml"), snippet("conf/model/linear.yaml")
    assert len(lines(data)) <= MAX_DATA_LINES and "defaults: [default]" in data
    assert len(lines(model)) <= MAX_MODEL_LINES and "defaults: [default]" in model
    assert set(OmegaConf.create(data)) == {"defaults", "source", "batch_size"}  # source args inside
    assert "path" in OmegaConf.create(data).source


def test_datamodule_keys_are_the_datamodules_arguments():
    taken = set(inspect.signature(DataModule.__init__).parameters) - {"self"}
    assert taken | {"_target_"} == DATAMODULE_KEYS


def test_code_defaults_are_set_without_a_plus_and_reach_their_objects(make_cfg):
    cfg = make_cfg(*["data=digits_wild", "data.source.size=12", "data.split.val_frac=0.2",
                   "data.num_workers=0", "model.net.dropout=0.45", "model.label_smoothing=0.1"])  # fmt: skip
    datamodule = build_data(cfg)
    assert datamodule.split.val_frac == 0.2
    assert tuple(datamodule.info.input_shape) == (1, 12, 12)  # the source got size=12
    model = build_model(cfg, datamodule.info)
    drops = [m.p for m in model.net.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops == [0.45]
    assert model.hparams.label_smoothing == 0.1


@pytest.mark.parametrize(
    ("override", "named", "hint"),
    [("model.net.dropuot=0.1", "model.net.dropuot", "model.net.dropout"),
     ("model.lable_smoothing=0.1", "model.lable_smoothing", "model.label_smoothing"),
     ("data.source.nmae=wine", "data.source.nmae", "data.source.name"),
     ("data.batchsize=8", "data.batchsize", "data.batch_size")],
)  # fmt: skip
def test_a_misspelt_key_is_refused_by_name_before_anything_is_built(
    make_cfg, override, named, hint
):
    cfg = make_cfg(override)
    build = (
        (lambda: build_model(cfg, build_data(make_cfg()).info))
        if named.startswith("model")
        else (lambda: build_data(cfg))
    )
    with pytest.raises(
        ConfigError, match=rf"^{re.escape(named)} is not an argument .*{re.escape(hint)}"
    ):
        build()


def test_a_run_stored_in_the_flat_data_layout_is_read_in_the_new_one(tmp_path):
    """Checkpoints written before data.source.* still evaluate: their source keys move down."""
    new = OmegaConf.to_container(compose(["data=image_folder", f"data.source.root={tmp_path}"]))
    old = {**new, "data": {**new["data"], "source": {k: v for k, v in new["data"]["source"].items()
                                                      if k.startswith("_")}}}  # fmt: skip
    old["data"].update({k: v for k, v in new["data"]["source"].items() if not k.startswith("_")})
    old["data"]["decode_workers"] = "${.num_workers}"  # the old relative interpolation
    assert "root" in old["data"] and "root" not in old["data"]["source"]
    cfg = trusted_config(old, "old run", {"output_dir": str(tmp_path), "data_dir": "data"}, [])
    assert cfg.data.source.root == str(tmp_path) and "root" not in cfg.data
    assert cfg.data.source.decode_workers == cfg.data.num_workers == 2
    assert upgrade_layout({"data": {"name": "x"}}) == {
        "data": {"name": "x"}
    }  # not a DataModule: untouched


def test_the_linter_sees_the_code_defaults_the_yaml_leaves_out(make_cfg):
    from dlrecipe.lint.core import get

    cfg = make_cfg()
    assert (
        "batch_norm" not in cfg.model.net
        and "normalize" not in make_cfg("model=finetune").model.net
    )
    assert (
        get(cfg, "model.net.batch_norm") is True and get(cfg, "model.net.convs_per_block", 1) == 2
    )
    assert get(make_cfg("model=finetune"), "model.net.normalize", False) is True
    assert get(make_cfg("model.net.batch_norm=false"), "model.net.batch_norm", True) is False
