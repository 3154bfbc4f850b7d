"""Each regularizer acts: L1 / elastic net on the loss, max-norm on the weights, activity
penalties on a forward, SWA and EMA on the final weights. Real wine MLP runs, a few epochs."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from dlrecipe.builders import build_data, build_model, build_trainer, compose
from dlrecipe.data.info import DataInfo
from dlrecipe.errors import ConfigError
from dlrecipe.eval import evaluate
from dlrecipe.models.optim import is_decayed
from dlrecipe.train import train

WINE = ["experiment=wine_mlp", "model.net.dropout=0.0", "report.enabled=false"]
TABLE = DataInfo("multiclass", (13,), ["a", "b", "c"])


class FirstLoss(pl.Callback):
    """The loss training_step returned for the first batch (penalty included)."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 1:
            self.loss = float(outputs["loss"])


def _first_loss(make_cfg, tmp_path: Path, *overrides: str) -> tuple[float, dict, pl.Trainer]:
    tmp_path.mkdir(parents=True)
    cfg = make_cfg(*WINE, "trainer.max_epochs=1", "logger=none", *overrides, run_dir=tmp_path)
    datamodule = build_data(cfg)
    pl.seed_everything(cfg.seed)
    model = build_model(cfg, datamodule.info)
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    probe = FirstLoss()
    trainer = build_trainer(cfg, tmp_path, extra_callbacks=[probe])
    trainer.fit(model, datamodule=datamodule)
    return probe.loss, initial, trainer


def test_l1_and_elastic_net_add_exactly_their_penalty_on_weights_only(make_cfg, tmp_path):
    plain, initial, _ = _first_loss(make_cfg, tmp_path / "a")
    l1, l2 = 1e-3, 1e-2
    with_l1, _, trainer = _first_loss(make_cfg, tmp_path / "b", f"model.regularization.l1={l1}")
    elastic, _, _ = _first_loss(make_cfg, tmp_path / "c", f"model.regularization.l1={l1}",
                                f"model.regularization.l2={l2}")  # fmt: skip
    weights = [p for p in initial.values() if is_decayed(p)]
    assert len(weights) < len(initial)  # biases and batch-norm parameters are left out
    abs_sum = sum(float(w.abs().sum()) for w in weights)
    sq_sum = sum(float(w.pow(2).sum()) for w in weights)
    assert with_l1 - plain == pytest.approx(l1 * abs_sum, rel=1e-4)
    assert elastic - plain == pytest.approx(l1 * abs_sum + l2 * sq_sum, rel=1e-4)
    assert "train/penalty" in trainer.callback_metrics  # logged once per epoch


def test_max_norm_keeps_every_unit_within_the_bound(make_cfg):
    c = 0.5
    cfg = make_cfg(*WINE, "trainer.max_epochs=3", f"model.regularization.max_norm={c}")
    model = build_model(cfg, TABLE)
    weights = [p for p in model.net.parameters() if is_decayed(p)]
    assert (
        max(float(w.detach().flatten(1).norm(dim=1).max()) for w in weights) > c
    )  # He init exceeds c
    datamodule = build_data(cfg)
    Path(cfg.paths.output_dir).mkdir(parents=True)
    trainer = build_trainer(cfg, Path(cfg.paths.output_dir))
    trainer.fit(model, datamodule=datamodule)
    assert trainer.global_step > 0
    for w in weights:
        assert float(w.detach().flatten(1).norm(dim=1).max()) <= c * (1 + 1e-5)


def test_activity_penalty_equals_the_batch_mean_of_l1_and_l2_on_the_layer(make_cfg):
    l1, l2 = 1e-2, 1e-3
    cfg = make_cfg(*WINE, "model.regularization.activity.layers=[net.body.3]",
                   f"model.regularization.activity.l1={l1}", f"model.regularization.activity.l2={l2}")  # fmt: skip
    model = build_model(cfg, TABLE).train()
    caught = []
    model.net.body[3].register_forward_hook(lambda m, i, o: caught.append(o.detach()))
    model(torch.randn(16, 13))
    a = caught[0]
    expected = (l1 * a.abs().sum(1) + l2 * a.pow(2).sum(1)).mean()
    assert float(model.regularization.penalty()) == pytest.approx(float(expected), rel=1e-6)
    model.eval()
    model(torch.randn(16, 13))
    assert float(model.regularization.penalty()) == 0.0  # evaluation forwards are not penalized


def test_regularization_off_by_default_and_bad_values_refused(make_cfg):
    assert build_model(make_cfg(*WINE), TABLE).regularization is None
    with pytest.raises(ConfigError, match=r"model\.regularization\.l1"):
        build_model(make_cfg(*WINE, "model.regularization.l1=-1"), TABLE)
    with pytest.raises(ConfigError, match=r"no module 'net\.nope'"):
        build_model(make_cfg(*WINE, "model.regularization.activity.layers=[net.nope]",
                             "model.regularization.activity.l1=1e-3"), TABLE)  # fmt: skip


def _final_weights(cfg) -> dict[str, torch.Tensor]:
    train(cfg)
    ckpt = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    return {k: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}


@pytest.mark.slow
def test_swa_and_ema_change_the_final_weights_and_the_test_scores_the_average(make_cfg, tmp_path):
    common = [*WINE, "trainer.max_epochs=4", "callbacks.early_stopping=null"]
    plain = _final_weights(make_cfg(*common, run_dir=tmp_path / "plain"))
    for averaging, option in (("swa", "callbacks.swa.start_epoch=0.5"),
                              ("ema", "callbacks.ema.update_starting_at_epoch=0")):  # fmt: skip
        cfg = make_cfg(*common, f"callbacks={averaging}", option, "callbacks.progress_bar=null",
                       "callbacks.model_summary=null", run_dir=tmp_path / averaging)  # fmt: skip
        averaged = _final_weights(cfg)
        assert plain.keys() == averaged.keys()
        assert any(not torch.allclose(plain[k], averaged[k]) for k in plain), averaging
    # The run's test scored the averaged weights the best checkpoint holds, as eval does.
    summary = json.loads((Path(cfg.paths.output_dir) / "summary.json").read_text())
    got = evaluate(compose([f"ckpt_path={summary['best_checkpoint']}", f"paths.output_dir={tmp_path / 'ev'}",
                            "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"], "eval"))  # fmt: skip
    assert got["test/loss"] == pytest.approx(summary["test_metrics"]["test/loss"], abs=1e-6)


def test_swa_before_its_first_update_never_stands_in_for_the_model(make_cfg):
    """Until SWA starts averaging, validation, checkpoints and the tested model are the trained
    weights; the untrained average must not win early stopping at epoch 0."""

    cfg = make_cfg("experiment=wine_mlp", "callbacks=swa", "trainer.max_epochs=8",
                   "callbacks.early_stopping.patience=2", "report.enabled=false")  # fmt: skip
    train(cfg)
    summary = json.loads((Path(cfg.paths.output_dir) / "summary.json").read_text())
    assert summary["best_epoch"] > 1
    assert summary["test_metrics"]["test/acc"] > 0.5  # untrained weights score about 0.1-0.4


@pytest.mark.parametrize(
    ("averaging", "option"),
    [("swa", "callbacks.swa.start_epoch=0"), ("ema", "callbacks.ema.update_starting_at_epoch=1")],
)
def test_averaging_validates_and_checkpoints_the_same_average(
    make_cfg, tmp_path, averaging, option
):
    """Each epoch's validation scores the average including that epoch (SWA's epoch-0 average is
    the epoch-0 weights, not a copy of the next epoch's), and the best checkpoint holds exactly
    the average that was validated: the summary reproduces the logged best val/loss."""
    cfg = make_cfg(*WINE, "trainer.max_epochs=3", "callbacks.early_stopping=null",
                   f"callbacks={averaging}", option, "callbacks.progress_bar=null",
                   "callbacks.model_summary=null", run_dir=tmp_path / averaging)  # fmt: skip
    train(cfg)
    run = Path(cfg.paths.output_dir)
    rows = [r for r in _history(run) if "val/loss" in r]
    losses = [r["val/loss"] for r in rows]
    assert len(set(losses)) == len(losses), losses  # no epoch validates a stale average
    summary = json.loads((run / "summary.json").read_text())
    assert summary["val_metrics"]["val/loss"] == pytest.approx(min(losses), abs=1e-6)


def _history(run: Path) -> list[dict[str, float]]:
    import csv

    with open(run / "history.csv") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
