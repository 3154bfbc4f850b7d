"""The config linter: every rule fires on a config that has its mistake, none fires on the
bundled experiments and search presets, extras.lint=false turns it off, and an error stops
train() before any data is loaded or any step is taken."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import OmegaConf

from dlrecipe.builders import CONF_DIR, compose
from dlrecipe.errors import ConfigError
from dlrecipe.lint import RULES, lint, run_lint
from dlrecipe.lint import core as lint_core
from dlrecipe.train import train

OUT = ["paths.output_dir=/tmp/dlrecipe-lint-test"]  # composed only, never written to

# (overrides, rule that must fire, level, key it must name)
CASES = [
    (["model.net.activation=sigmoid", "model=mlp", "model.net.hidden=[64,64,64]"],
     "saturating_hidden_units", "warning", "model.net.activation"),
    (["model.net.activation=tanh"], "init_for_activation", "warning", "model.init"),
    (["model=mlp", "model.init=small_normal", "model.net.hidden=[64,64,64]"],
     "init_for_activation", "warning", "model.init"),
    (["model.net.conv_dropout=0.6"], "heavy_dropout", "warning", "model.net.conv_dropout"),
    (["model.net.dropout=0.8"], "heavy_dropout", "warning", "model.net.dropout"),
    (["model.loss=mse", "model.label_smoothing=0.1"], "label_smoothing_needs_cross_entropy",
     "error", "model.label_smoothing"),
    (["+model.net.output_activation=sigmoid"], "squashing_output_with_logits_loss", "error",
     "model.net.output_activation"),
    (["model.optimizer.lr=10"], "learning_rate_range", "warning", "model.optimizer.lr"),
    (["model/optimizer=sgd", "model.optimizer.lr=1e-7"], "learning_rate_range", "warning",
     "model.optimizer.lr"),
    (["model/optimizer=adam", "model.optimizer.weight_decay=0.01"], "weight_decay_in_adam",
     "warning", "model.optimizer.weight_decay"),
    (["model/optimizer=sgd", "model.optimizer.momentum=0"], "nesterov_needs_momentum", "error",
     "model.optimizer.nesterov"),
    (["monitor.metric=val/acc"], "monitor_mode_matches_metric", "error", "monitor.mode"),
    (["monitor.metric=val/loss", "monitor.mode=max"], "monitor_mode_matches_metric", "error",
     "monitor.mode"),
    (["monitor.metric=test/loss"], "no_model_selection_on_test", "error", "monitor.metric"),
    (["optimized_metric=test/acc"], "no_model_selection_on_test", "error", "optimized_metric"),
    (["callbacks.early_stopping.patience=30", "trainer.max_epochs=20"],
     "early_stopping_can_trigger", "warning", "callbacks.early_stopping.patience"),
    (["trainer=ddp_cpu", "+callbacks.bsf._target_=lightning.pytorch.callbacks.BatchSizeFinder"],
     "batch_size_finder_without_ddp", "error", "callbacks.bsf"),
    (["data=image_folder", "data.source.root=/data/photos", "data.source.test_root=/data/photos/"],
     "fixed_splits_differ_from_training_folder", "error", "data.source.test_root"),
    (["data.augmentation.ops=[hflip]"], "label_preserving_augmentation", "warning",
     "data.augmentation.ops"),
    (["data.augmentation.ops=[{rotate:{degrees:180}}]"], "label_preserving_augmentation",
     "warning", "data.augmentation.ops"),
    (["data=digits_wild", "data.augmentation.ops=[vflip]"], "label_preserving_augmentation",
     "warning", "data.augmentation.ops"),
    (["experiment=wine_mlp", "data/normalization=none", "model.net.batch_norm=false"],
     "inputs_reach_the_net_scaled", "warning", "data/normalization"),
    (["model=finetune", "data/normalization=standardize"], "pretrained_inputs_normalized_once",
     "warning", "data/normalization"),
    (["experiment=diabetes_mlp", "model.loss=huber", "data.target_scaling=none"],
     "huber_delta_needs_scaled_targets", "warning", "data.target_scaling"),
    (["model=finetune", "model/finetuning=feature_extraction", "model.finetuning.cache_features=true",
      "data/augmentation=light"], "feature_cache_without_augmentation", "error",
     "model.finetuning.cache_features"),
    (["callbacks.model_checkpoint.monitor=null"], "one_checkpoint_per_role", "error",
     "callbacks.model_checkpoint.monitor"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "rule_name", "level", "key"), CASES)
def test_each_rule_fires_naming_the_key_and_a_fix(overrides, rule_name, level, key):
    rule = next(r for r in RULES if r.__name__ == rule_name)
    findings = rule(compose([*OUT, *overrides]))
    assert [(f.level, f.key) for f in findings] == [(level, key)]
    assert len(findings[0].message) > 40  # says why and what to do, not just "bad value"


def test_every_rule_has_a_case():
    assert {r.__name__ for r in RULES} <= {c[1] for c in CASES} | {
        "learning_rate_searched_log_uniformly"
    }


def _with_hydra(overrides: list[str]):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return hydra_compose("train", overrides=[*OUT, *overrides], return_hydra_config=True)


def test_a_uniform_learning_rate_search_is_flagged():
    cfg = _with_hydra(["hparams_search=digits_lr_bs"])
    assert lint(cfg) == []  # the preset searches tag(log, interval(1e-4, 1e-1))
    OmegaConf.update(cfg, "hydra.sweeper.params", {"model.optimizer.lr": "interval(1e-4, 1e-1)",
                                                   "model.net.dropout": "interval(0, 0.5)"},
                     merge=False)  # fmt: skip
    findings = lint(cfg)
    assert [f.key for f in findings] == ["hydra.sweeper.params.model.optimizer.lr"]
    assert "tag(log, interval(0.0001, 0.1))" in findings[0].message


@pytest.mark.parametrize(
    "overrides",
    [[f"experiment={p.stem}"] for p in sorted((CONF_DIR / "experiment").glob("*.yaml"))]
    + [[f"hparams_search={p.stem}"] for p in sorted((CONF_DIR / "hparams_search").glob("*.yaml"))]
    + [["debug=sanity"], ["debug=overfit"], ["trainer=ddp_cpu"]],
)
def test_no_false_positives_on_the_bundled_configs(overrides):
    assert lint(_with_hydra(overrides)) == []


def test_mirroring_is_fine_where_orientation_carries_no_label():
    rule = next(r for r in RULES if r.__name__ == "label_preserving_augmentation")
    assert rule(compose([*OUT, "data=fashion_mnist", "data.augmentation.ops=[hflip]"])) == []


def test_warnings_are_logged_once_and_lint_false_switches_everything_off(caplog):
    lint_core._already_warned.clear()
    cfg = compose([*OUT, "model.net.conv_dropout=0.6"])
    with caplog.at_level(logging.WARNING, logger="dlrecipe.lint"):
        run_lint(cfg)
        run_lint(cfg)  # the trials of a sweep share a process: one warning, not one per trial
    assert [r.getMessage().count("model.net.conv_dropout") for r in caplog.records] == [1]
    broken = compose([*OUT, "monitor.metric=val/acc", "extras.lint=false"])
    assert run_lint(broken) == []


def test_an_error_stops_train_before_any_data_or_fit(make_cfg):
    cfg = make_cfg("monitor.metric=val/acc", "data=csv", "data.source.path=/nonexistent.csv",
                   "data.source.target=y")  # fmt: skip
    with pytest.raises(ConfigError, match=r"monitor.mode.*Set monitor.mode=max"):
        train(cfg)  # the missing CSV would fail at load time: the linter came first
    assert not Path(cfg.paths.output_dir).exists()
