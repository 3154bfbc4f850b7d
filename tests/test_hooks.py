"""Run hooks named in config: called at their points, in order, and refused when malformed.

python -m pytest tests/test_hooks.py -q
"""

from __future__ import annotations

import json
import re

import pytest

from dlrecipe.errors import ConfigError
from dlrecipe.hooks import SKIP
from dlrecipe.train import train

CALLS: list[str] = []  # what Recorder saw, in order (a hook is built from config, not passed in)
WINE = ["experiment=wine_mlp", "trainer.max_epochs=1", "report.enabled=false"]


class Recorder:
    """A user's hook: every method, each leaving a trace of what it could see."""

    def configure(self, cfg):
        CALLS.append("configure")

    def after_data(self, ctx):
        CALLS.append(f"after_data:{ctx.datamodule.info.task}")

    def run(self, ctx, fit):
        CALLS.append("run")
        return SKIP  # the plain fit goes on

    def callbacks(self, ctx):
        CALLS.append(f"callbacks:model={ctx.model is not None}")
        return []

    def before_fit(self, ctx):
        CALLS.append(f"before_fit:epoch={ctx.trainer.current_epoch}")

    def after_fit(self, ctx):
        CALLS.append(f"after_fit:epoch={ctx.trainer.current_epoch}")

    def after_evaluate(self, ctx, summary):
        CALLS.append("after_evaluate")
        summary.notes.append("seen by Recorder")

    def on_summary(self, ctx, summary):
        CALLS.append(f"on_summary:written={(ctx.run_dir / 'summary.json').is_file()}")

    def teardown(self, ctx):
        CALLS.append("teardown")


class TakeOver:
    """A hook that runs instead of the fit (as K-fold and debug=sanity do)."""

    def run(self, ctx, fit):
        return 123.0


def test_a_hook_named_in_config_runs_at_each_point_in_order(make_cfg, tmp_path):
    CALLS.clear()
    train(make_cfg(*WINE, "hooks=[{_target_: tests.test_hooks.Recorder}]"))
    assert CALLS == [
        "configure", "after_data:multiclass", "run", "callbacks:model=True",
        "before_fit:epoch=0", "after_fit:epoch=1", "after_evaluate", "on_summary:written=True",
        "teardown",
    ]  # fmt: skip
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert "seen by Recorder" in summary["notes"]  # written again after the hooks
    # hooks=[...] replaced the default list: none of the default hooks' files were written
    assert not (run / "learning_curves.png").exists()
    assert not (run / "val_predictions.csv").exists()


def test_the_default_hooks_write_what_the_run_always_wrote(make_cfg, tmp_path):
    train(make_cfg(*WINE))
    run = tmp_path / "run"
    assert (run / "learning_curves.png").is_file() and (run / "test_predictions.csv").is_file()
    assert json.loads((run / "summary.json").read_text())["next_steps"] is not None


def test_a_hook_can_take_the_run_over(make_cfg, tmp_path):
    result = train(make_cfg(*WINE, "hooks=[{_target_: tests.test_hooks.TakeOver}]"))
    assert result == 123.0 and not (tmp_path / "run" / "summary.json").exists()


@pytest.mark.parametrize(
    ("hooks", "named"),
    [
        ("[42]", "hooks[0]=42 needs a _target_"),
        ("[{_target_: builtins.dict}]", "hooks[0] (builtins.dict) has none of"),
        ("7", "hooks must be a list"),
    ],
)
def test_a_malformed_hook_is_refused_before_any_data(make_cfg, tmp_path, hooks, named):
    # data.path of a file that does not exist: reading the data would fail with another message
    cfg = make_cfg(
        f"hooks={hooks}", "data=csv", f"data.path={tmp_path / 'none.csv'}", "data.target=y"
    )
    with pytest.raises(ConfigError, match=re.escape(named)):
        train(cfg)


def test_skip_survives_train_pickled_by_value(make_cfg):
    """submitit pickles `python -m dlrecipe.train` (__main__) by value, globals and all: a hook's
    SKIP must still mean "run the plain fit" there (it once came back as a sweep's result)."""
    cloudpickle = pytest.importorskip("cloudpickle")  # submitit's; absent without that extra
    import dlrecipe.train as module

    cloudpickle.register_pickle_by_value(module)
    try:
        copy = cloudpickle.loads(cloudpickle.dumps(module.train))
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    assert copy is not module.train
    result = copy(make_cfg(*WINE, "hooks=[{_target_: tests.test_hooks.Recorder}]"))
    assert isinstance(result, float)  # val/loss of the plain fit
