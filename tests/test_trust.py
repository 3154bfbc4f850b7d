"""Configs read from disk build only what dlrecipe builds (dlrecipe.trust), on every loading path.

    python -m pytest tests/test_trust.py -q

One real 1-epoch wine MLP run is shared; each test poisons its own copy: the config inside the
checkpoints or the run's .hydra/config.yaml asks for `pathlib.Path.touch` on a marker file (and
lists it in the stored trusted_targets, which must not count). Every loading path must refuse it
with one line naming the file and the key, and the marker must never appear.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from dlrecipe.builders import build_data, build_model, compose
from dlrecipe.checkpoints import load_checkpoint
from dlrecipe.errors import ConfigError, exit_on_config_error
from dlrecipe.eval import evaluate
from dlrecipe.models.module import CONFIG_KEY
from dlrecipe.models.nets.mlp import MLP
from dlrecipe.report.__main__ import main as report_main
from dlrecipe.train import train
from dlrecipe.trust import project_targets, trusted_config, use_trusted_targets

from .conftest import QUICK

RUN = ["experiment=wine_mlp", *QUICK, "trainer.max_epochs=1", "report.enabled=false"]
KEY = "model.net.hidden[0]._target_"
KEY_RE = re.escape(KEY)
EVIL = "pathlib.Path.touch"


class OwnMLP(MLP):
    """A user's own net: the same MLP under a name dlrecipe's conf/ does not use."""


def _train(run_dir: Path, *overrides: str) -> dict:
    train(compose([*RUN, *overrides, f"paths.output_dir={run_dir}"]))
    # what Hydra writes beside a run: the composed config, unresolved
    (run_dir / ".hydra").mkdir()
    OmegaConf.save(compose([*RUN, *overrides]), run_dir / ".hydra" / "config.yaml")
    return json.loads((run_dir / "summary.json").read_text())


@pytest.fixture(scope="module")
def legit(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("legit") / "run"
    _train(run_dir)
    return run_dir


def _poison(config: dict, marker: Path) -> dict:
    config["model"]["net"]["hidden"] = [{"_target_": EVIL, "_args_": [str(marker)]}]
    config["trusted_targets"] = [EVIL]  # a stored list must not extend the allow-list
    return config


def _copy(legit: Path, tmp_path: Path) -> Path:
    run_dir = tmp_path / "shared_run"
    shutil.copytree(legit, run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["best_checkpoint"] = str(
        run_dir / "checkpoints" / Path(summary["best_checkpoint"]).name
    )
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


@pytest.fixture(params=["checkpoint", "run_dir"])
def poisoned(request, legit: Path, tmp_path: Path) -> tuple[Path, Path, str]:
    """(run dir, marker, the file the error must name): config poisoned inside its checkpoints,
    or in its .hydra/config.yaml."""
    run_dir, marker = _copy(legit, tmp_path), tmp_path / "marker"
    best = json.loads((run_dir / "summary.json").read_text())["best_checkpoint"]
    if request.param == "checkpoint":
        for ckpt in (run_dir / "checkpoints").glob("*.ckpt"):
            checkpoint = torch.load(ckpt, weights_only=True)
            _poison(checkpoint[CONFIG_KEY], marker)
            torch.save(checkpoint, ckpt)
        named = f"{best} (its config)"
    else:
        saved = run_dir / ".hydra" / "config.yaml"
        config = OmegaConf.to_container(OmegaConf.load(saved), resolve=False)
        OmegaConf.save(OmegaConf.create(_poison(config, marker)), saved)
        named = str(saved)
    return run_dir, marker, named


def _best(run_dir: Path) -> str:
    return json.loads((run_dir / "summary.json").read_text())["best_checkpoint"]


def _eval_cfg(ckpt: str, out: Path, *overrides: str):
    return compose([f"ckpt_path={ckpt}", f"paths.output_dir={out}", "trainer.accelerator=cpu",
                    "trainer.enable_progress_bar=false", *overrides], "eval")  # fmt: skip


def _one_line(err: str, named: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert named in lines[0] and f"{KEY}='{EVIL}' is not a target dlrecipe builds" in lines[0]
    assert "Traceback" not in err


def test_the_poison_would_run_code(tmp_path):
    """Unchecked, the poisoned net config touches the marker (so the tests below can fail)."""
    marker = tmp_path / "marker"
    config = _poison(OmegaConf.to_container(compose(RUN), resolve=False), marker)
    instantiate(OmegaConf.create(config["model"]["net"]))
    assert marker.exists()


@pytest.mark.parametrize("predict", [False, True])
def test_eval_and_predict_refuse(poisoned, tmp_path, capsys, predict):
    run_dir, marker, named = poisoned
    rows = tmp_path / "rows.csv"
    rows.write_text("a\n1\n")
    extra = [f"predict.input={rows}"] if predict else []
    with pytest.raises(SystemExit) as exit_:
        exit_on_config_error(evaluate)(_eval_cfg(_best(run_dir), tmp_path / "ev", *extra))
    assert exit_.value.code == 2
    _one_line(capsys.readouterr().err, named)
    assert not marker.exists()
    assert not (tmp_path / "ev" / "predictions.csv").exists()


def test_report_refuses(poisoned, capsys):
    run_dir, marker, named = poisoned
    assert report_main([str(run_dir)]) == 2
    _one_line(capsys.readouterr().err, named)
    assert not marker.exists() and not (run_dir / "report").exists()


def test_resume_refuses(poisoned, tmp_path):
    run_dir, marker, named = poisoned
    named = named if named.endswith("config.yaml") else str(run_dir / "checkpoints" / "last.ckpt")
    before = sorted(p.name for p in run_dir.rglob("*"))
    with pytest.raises(ConfigError, match=KEY_RE) as err:
        train(compose([f"resume={run_dir}", f"paths.output_dir={tmp_path / 'x'}"]))
    assert str(err.value).startswith(named)
    assert not marker.exists()
    assert sorted(p.name for p in run_dir.rglob("*")) == before  # nothing written into it


def test_ckpt_path_refuses(poisoned, tmp_path):
    run_dir, marker, named = poisoned
    with pytest.raises(ConfigError, match=KEY_RE) as err:
        train(compose([*RUN, f"ckpt_path={_best(run_dir)}", f"paths.output_dir={tmp_path / 'x'}"]))
    assert named in str(err.value)
    assert not marker.exists() and not (tmp_path / "x" / "checkpoints").exists()


def test_an_earlier_run_as_backbone_refuses(poisoned):
    run_dir, marker, named = poisoned
    cfg = compose(["experiment=digits_finetune", f"model.net.backbone.weights={run_dir}", *QUICK])
    with pytest.raises(ConfigError, match=KEY_RE) as err:
        build_model(cfg, build_data(cfg).info)
    assert named in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("poisoned", ["run_dir"], indirect=True)  # one real process is enough
def test_eval_exits_2_with_one_line_from_the_command_line(poisoned, tmp_path):
    run_dir, marker, named = poisoned
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    result = subprocess.run(
        [sys.executable, "-m", "dlrecipe.eval", f"ckpt_path={_best(run_dir)}",
         f"hydra.run.dir={tmp_path / 'ev'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    _one_line(result.stderr.replace("error: ", "", 1), named)
    assert not marker.exists()


def test_a_legit_run_still_evaluates_and_resumes(legit, tmp_path):
    expected = json.loads((legit / "summary.json").read_text())["test_metrics"]
    got = evaluate(_eval_cfg(_best(legit), tmp_path / "ev"))
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key
    run_dir = _copy(legit, tmp_path)  # moved: its stored write paths must follow it
    before = sorted(p.name for p in (legit / "checkpoints").iterdir())
    last = run_dir / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    checkpoint[CONFIG_KEY]["trainer"]["max_epochs"] = 2  # as if stopped after epoch 1 of 2
    torch.save(checkpoint, last)
    (run_dir / "summary.json").unlink()  # a finished run is left alone; this one was "killed"
    train(compose([f"resume={run_dir}"]))
    assert json.loads((run_dir / "summary.json").read_text())["epochs_run"] == 2
    assert sorted(p.name for p in (legit / "checkpoints").iterdir()) == before  # nothing new there


def test_trusted_targets_admit_a_listed_callable_from_the_command_only(tmp_path):
    own = f"{OwnMLP.__module__}.OwnMLP"
    summary = _train(tmp_path / "own", f"model.net._target_={own}")
    with pytest.raises(
        ConfigError, match=rf"model\.net\._target_='{own}'.*trusted_targets=\['{own}'\]"
    ):
        evaluate(_eval_cfg(summary["best_checkpoint"], tmp_path / "ev1"))
    got = evaluate(
        _eval_cfg(summary["best_checkpoint"], tmp_path / "ev2", f"trusted_targets=[{own}]")
    )
    assert got["test/acc"] == pytest.approx(summary["test_metrics"]["test/acc"], abs=1e-6)


# --- the checks themselves, on small hand-made configs ------------------------------------------

PATHS = {"output_dir": "/runs/now", "data_dir": "data"}


def _stored(**net) -> dict:
    return {"paths": {"output_dir": "/runs/then", "data_dir": "/old/data"},
            "model": {"_target_": "dlrecipe.models.module.LitModel",
                      "net": {"_target_": "dlrecipe.models.nets.mlp.MLP", "_partial_": True, **net}}}  # fmt: skip


@pytest.mark.parametrize(
    ("net", "key", "why"),
    [
        ({"_target_": "builtins.exec"}, "model.net._target_", "not a target dlrecipe builds"),
        ({"act": [{"x": {"_target_": "os.system", "_partial_": True}}]}, "model.net.act[0].x._target_", "not a target"),
        ({"_target_": "dlrecipe.models.nets.mlp"}, "model.net._target_", "not a target"),  # a module prefix
        ({"_target_": "${model.evil}"}, "model.net._target_", "not a target"),
        ({"_target_": {"a": 1}}, "model.net._target_", "not a target"),
        ({"dropout": "${oc.env:TRUST_TEST_SECRET}"}, "model.net.dropout", "reads an environment variable"),
        ({"dropout": "${ oc.decode:'{a: 1}'}"}, "model.net.dropout", "calls the resolver 'oc.decode'"),
        ({"dropout": "${hydra:job.name}"}, "model.net.dropout", "reads this command's Hydra config"),
        ({"a": "$${model.b}", "b": "{oc.env:HOME}"}, "model.net.a", "builds an interpolation"),
    ],
)  # fmt: skip
def test_refused_configs_name_the_file_and_key(net, key, why, monkeypatch):
    monkeypatch.setenv("TRUST_TEST_SECRET", "hunter2")
    stored = _stored(**net)
    stored["model"]["evil"] = "builtins.exec"
    stored["model"]["b"] = "{oc.env:HOME}"
    with pytest.raises(ConfigError, match=r"^the/file\.yaml: ") as err:
        trusted_config(stored, "the/file.yaml", PATHS, trusted=[])
    assert key in str(err.value) and why in str(err.value)
    assert "hunter2" not in str(err.value)


def test_write_paths_stay_inside_the_run_and_downloads_are_off():
    stored = _stored()
    stored["callbacks"] = {"ckpt": {"_target_": "lightning.pytorch.callbacks.ModelCheckpoint",
                                    "dirpath": "/runs/then/checkpoints"}}  # fmt: skip
    stored["data"] = {"source": {"dir": "/old/data", "download": True}}
    stored["optuna"] = {"storage": "/home/me/study.journal", "trial_id": 3}
    cfg = trusted_config(stored, "f", PATHS, trusted=[])
    assert cfg.callbacks.ckpt.dirpath == str(Path("/runs/now/checkpoints").resolve())
    assert (
        cfg.data.source.download is False
        and cfg.data.source.dir == "data"
        and cfg.paths.data_dir == "data"
    )
    assert cfg.optuna.storage is None and cfg.optuna.trial_id is None
    stored["callbacks"]["ckpt"]["dirpath"] = "/home/me/.ssh"  # brought inside, never written there
    cfg = trusted_config(stored, "f", PATHS, trusted=[])
    assert cfg.callbacks.ckpt.dirpath == str(Path("/runs/now/.ssh").resolve())


def test_the_allow_list_is_exact_and_the_users_list_is_checked():
    targets = project_targets()
    assert {
        "dlrecipe.models.nets.mlp.MLP",
        "lightning.pytorch.Trainer",
        "torch.optim.AdamW",
    } <= targets
    assert not any(t.count(".") < 1 or t.endswith("*") for t in targets)
    assert "torch.optim" not in targets and "dlrecipe.models.nets.mlp" not in targets
    cfg = trusted_config(_stored(_target_="builtins.len"), "f", PATHS, trusted=["builtins.len"])
    assert cfg.model.net._target_ == "builtins.len" and list(cfg.trusted_targets) == [
        "builtins.len"
    ]
    with pytest.raises(
        ConfigError, match=r"trusted_targets: 'my_pkg\.\*' is not a dotted callable"
    ):
        use_trusted_targets(["my_pkg.*"])
    use_trusted_targets(None)


def test_unresolvable_or_absurdly_deep_configs_are_one_line_too():
    with pytest.raises(ConfigError, match=r"^f: model\.x: the config does not resolve"):
        trusted_config({"model": {"x": "${nope.y}"}}, "f", PATHS, trusted=[])
    deep = node = {}
    for _ in range(5000):
        node["a"] = node = {}
    with pytest.raises(ConfigError, match=r"^f: the stored config is nested too deeply"):
        trusted_config(deep, "f", PATHS, trusted=[])
    with pytest.raises(ConfigError, match=r"trusted_targets=\{'a': 1\} must be a list"):
        use_trusted_targets({"a": 1})


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickled_object_is_refused_without_torchs_weights_only_advice(tmp_path):
    marker, ckpt = tmp_path / "marker", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "x": _Payload(marker)}, ckpt)
    with pytest.raises(ConfigError, match=r"^ckpt_path=.*could run code") as err:
        load_checkpoint(ckpt)
    assert "weights_only" not in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()
