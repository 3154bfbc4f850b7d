"""What to try next, refit on train + validation, the fold ensemble in eval, versions in every run.

python -m pytest tests/test_practices_runs.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dlrecipe.builders import build_data, compose
from dlrecipe.data.loaders import to_float
from dlrecipe.errors import ConfigError
from dlrecipe.eval import evaluate
from dlrecipe.guards import Diverged
from dlrecipe.train import train

QUIET = ["report.enabled=false", "logger=none"]
MLP = ["model=mlp", *QUIET]


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _findings(run_dir: Path) -> list[str]:
    return [s["finding"] for s in _summary(run_dir)["next_steps"]]


def test_a_healthy_run_gets_no_diagnosis_and_records_its_versions(make_cfg, tmp_path):
    train(make_cfg(*MLP, "trainer.max_epochs=5"))
    summary = _summary(tmp_path / "run")
    assert summary["test_metrics"]["test/acc"] > 0.9  # healthy indeed
    assert summary["next_steps"] == [] and not any("fitting" in n for n in summary["notes"])
    versions = summary["versions"]
    assert torch.__version__.startswith(versions["torch"].split("+")[0])
    assert {"torch", "torchvision", "lightning", "hydra", "optuna", "dlrecipe", "python"} <= set(
        versions
    )
    assert set(versions["git"]) == {"commit", "dirty"}  # a commit and a bool, or null without git
    ckpt = torch.load(summary["best_checkpoint"], weights_only=True)
    assert ckpt["dlrecipe_versions"]["lightning"] == versions["lightning"]


def test_no_git_gives_null_never_an_error(tmp_path, monkeypatch):
    from dlrecipe.versions import git_state

    assert git_state(tmp_path) == {"commit": None, "dirty": None}  # not a git tree
    monkeypatch.setenv("PATH", str(tmp_path))  # no git program at all
    assert git_state(tmp_path / "x") == {"commit": None, "dirty": None}


def test_an_under_fitting_run_is_named_with_its_numbers(make_cfg, tmp_path):
    train(make_cfg(*MLP, "model.net.hidden=[4]", "model.optimizer.lr=1e-5", "trainer.max_epochs=2"))
    summary = _summary(tmp_path / "run")
    (step,) = [s for s in summary["next_steps"] if s["finding"] == "under-fitting"]
    assert "of predicting the training prior" in step["evidence"]
    assert "model.net.hidden=[8]" in step["try"] and "trainer.max_epochs=4" in step["try"]
    assert "model.optimizer.lr=3e-05" in step["try"]
    assert "over-fitting" not in _findings(tmp_path / "run")
    assert any(n.startswith("under-fitting: final training loss") for n in summary["notes"])


def test_an_over_fitting_run_is_named_with_its_numbers(make_cfg, tmp_path):
    # 50 training samples, a wide net without dropout, weight decay or batch norm, constant lr
    train(make_cfg(*MLP, "model.net.hidden=[256,256]", "model.net.dropout=0",
                   "model.net.batch_norm=false", "model.optimizer.weight_decay=0",
                   "model.optimizer.lr=0.01", "model/scheduler=none", "data.batch_size=8",
                   "data.split.train_per_class=5", "trainer.max_epochs=12",
                   "callbacks.early_stopping=null"))  # fmt: skip
    findings = _findings(tmp_path / "run")
    assert "over-fitting" in findings and "under-fitting" not in findings
    (step,) = [
        s for s in _summary(tmp_path / "run")["next_steps"] if s["finding"] == "over-fitting"
    ]
    assert "validation loss was lowest at epoch" in step["evidence"]
    assert "data/augmentation=light" in step["try"] and "model.net.dropout=0.5" in step["try"]


def test_a_diverged_run_gets_its_next_steps(make_cfg, tmp_path):
    with pytest.raises(Diverged):
        train(make_cfg(*MLP, "model.optimizer.lr=1e30", "trainer.max_epochs=1"))
    summary = _summary(tmp_path / "run")
    assert summary["status"] == "diverged"
    (step,) = summary["next_steps"]
    assert step["finding"] == "diverged" and "became nan" in step["evidence"]
    assert "model.optimizer.lr=0.001" in step["try"] and "gradient_clip_val" in step["try"]
    assert summary["versions"]["lightning"]


def test_stalled_dead_units_and_data_curve_findings_follow_their_numbers(make_cfg, tmp_path):
    from dlrecipe.diagnosis import data_curve, dead_units, stalled

    flat = [{"val/loss": v} for v in (1.0, 0.995, 0.99, 0.992)]
    assert "only 1.0% below" in stalled(flat)
    assert stalled([{"val/loss": v} for v in (1.0, 0.8, 0.6, 0.5)]) is None
    assert "net.body.2 75%" in dead_units({"monitor/act_dead/net.body.2": 0.75})
    assert dead_units({"monitor/act_dead/net.body.2": 0.1}) is None
    rows = [(f, n, s, 1.0, v) for f, n, vs in ((0.5, 500, (0.80, 0.81)), (1.0, 1000, (0.90, 0.91)))
            for s, v in enumerate(vs)]  # fmt: skip
    columns = ["fraction", "n_train", "seed", "train_score", "val_score"]
    pd.DataFrame(rows, columns=columns).to_csv(tmp_path / "data_curve.csv", index=False)
    assert "still rises from 0.8050 at 500 to 0.9050 at 1000" in data_curve(
        tmp_path / "run", "multiclass"
    )
    flat_rows = [
        (f, n, s, 1.0, 0.9 + 0.01 * s) for f, n in ((0.5, 500), (1.0, 1000)) for s in (0, 1)
    ]
    pd.DataFrame(flat_rows, columns=columns).to_csv(tmp_path / "data_curve.csv", index=False)
    assert data_curve(tmp_path / "run", "multiclass") is None  # flat: no claim
    (tmp_path / "data_curve.csv").write_text("garbage,\n\x00\n")
    assert data_curve(tmp_path / "run", "multiclass") is None  # unreadable: no claim, no crash


def test_refit_trains_on_exactly_train_plus_validation_for_the_chosen_epochs(make_cfg, tmp_path):
    cfg = make_cfg(*MLP, "trainer.max_epochs=3", "refit=true")
    train(cfg)
    run_dir = tmp_path / "run"
    summary = _summary(run_dir)
    fold = build_data(cfg).fold
    refit = summary["refit"]
    assert refit["chosen_epochs"] == summary["best_epoch"] == refit["epochs"]
    assert refit["n_train"] == len(fold.train) + len(fold.val)
    batches = refit["n_train"] // cfg.data.batch_size  # drop_last
    assert refit["train_steps"] == refit["epochs"] * batches
    history = pd.read_csv(run_dir / "refit_history.csv")
    assert len(history) == refit["epochs"]
    assert summary["model_to_use"] == refit["checkpoint"] == str(run_dir / "checkpoints/refit.ckpt")
    assert set(refit["test_metrics"]) == set(summary["test_metrics"])
    # normalization refitted on train + validation (per channel, over every pixel)
    inputs = build_data(cfg).data.inputs
    union = torch.as_tensor(np.concatenate([fold.train, fold.val]))
    saved = torch.load(refit["checkpoint"], weights_only=True)["dlrecipe_data"]["normalization"]
    held_out = torch.load(summary["best_checkpoint"], weights_only=True)["dlrecipe_data"]
    assert torch.allclose(saved["mean"], to_float(inputs[union]).mean().reshape(1), atol=1e-5)
    assert not torch.allclose(saved["mean"], held_out["normalization"]["mean"], atol=1e-5)
    # eval on the run directory uses the refit model, and reproduces its test metrics
    got = evaluate(compose([f"ckpt_path={run_dir}", f"paths.output_dir={tmp_path / 'ev'}",
                            "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"], "eval"))  # fmt: skip
    assert got["test/acc"] == pytest.approx(refit["test_metrics"]["test/acc"], abs=1e-6)


def test_refit_with_kfold_is_refused_before_training(make_cfg):
    with pytest.raises(ConfigError, match="refit=true refits one hold-out fit"):
        train(make_cfg(*MLP, "refit=true", "data/split=kfold", "data.split.k=2"))


def test_kfold_eval_predicts_with_the_mean_of_the_folds(make_cfg, tmp_path, table_csv, capsys):
    cfg = make_cfg("data=csv", f"data.source.path={table_csv}", "data.source.target=kind", *MLP,
                   "data.source.features=[a,b,colour]", "data/split=stratified_kfold", "data.split.k=2",
                   "trainer.max_epochs=1")  # fmt: skip
    train(cfg)
    run_dir = tmp_path / "run"
    new = tmp_path / "new.csv"
    pd.read_csv(table_csv).head(9).to_csv(new, index=False)

    def predict(ckpt: Path | str, out: str) -> pd.DataFrame:
        evaluate(compose([f"ckpt_path={ckpt}", f"paths.output_dir={tmp_path / out}",
                          f"predict.input={new}", "trainer.accelerator=cpu",
                          "trainer.enable_progress_bar=false"], "eval"))  # fmt: skip
        return pd.read_csv(tmp_path / out / "predictions.csv")

    ensemble = predict(run_dir, "ens")
    assert "fold ensemble: the mean of 2 fold models' probabilities" in capsys.readouterr().out
    folds = [predict(_summary(run_dir / f)["best_checkpoint"], f) for f in ("fold0", "fold1")]
    probs = [c for c in ensemble.columns if c.startswith("prob_")]
    mean = np.mean([f[probs].to_numpy() for f in folds], 0)
    assert np.allclose(ensemble[probs].to_numpy(), mean, atol=1e-6)
    assert list(ensemble["prediction"]) == [probs[i].removeprefix("prob_") for i in mean.argmax(1)]
    # its test metrics are cv_summary's fold-ensemble row
    metrics = json.loads((tmp_path / "ens" / "metrics.json").read_text())
    cv = json.loads((run_dir / "cv_summary.json").read_text())
    assert metrics["test/acc"] == pytest.approx(cv["ensemble"]["test/acc"], abs=1e-6)


def test_run_dir_paths_from_summary_json_stay_inside_the_run(tmp_path):
    from dlrecipe.ensemble import checkpoints_of

    run = tmp_path / "moved"
    run.mkdir()
    stored = {"run_dir": "/was/here", "model_to_use": "/was/here/checkpoints/refit.ckpt"}
    (run / "summary.json").write_text(json.dumps(stored))
    assert checkpoints_of(run) == [str((run / "checkpoints/refit.ckpt").resolve())]
    stored["model_to_use"] = "/etc/passwd"
    (run / "summary.json").write_text(json.dumps(stored))
    with pytest.raises(ConfigError, match="points outside its run directory"):
        checkpoints_of(run)
    (run / "summary.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a run summary"):
        checkpoints_of(run)


def test_eval_warns_once_when_torch_or_lightning_moved(make_cfg, tmp_path, capsys):
    train(make_cfg(*MLP, "trainer.max_epochs=1"))
    ckpt_path = _summary(tmp_path / "run")["best_checkpoint"]
    args = [f"ckpt_path={ckpt_path}", f"paths.output_dir={tmp_path / 'ev'}",
            "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"]  # fmt: skip
    evaluate(compose(args, "eval"))
    assert "other library versions" not in capsys.readouterr().err  # same environment: silent
    ckpt = torch.load(ckpt_path, weights_only=True)
    ckpt["dlrecipe_versions"]["torch"] = "1.13.1"
    torch.save(ckpt, ckpt_path)
    evaluate(compose(args, "eval"))
    err = [ln for ln in capsys.readouterr().err.splitlines() if "other library versions" in ln]
    assert len(err) == 1 and "torch 1.13.1 -> " in err[0]
