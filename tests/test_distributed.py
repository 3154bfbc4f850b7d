"""DDP on two CPU processes (gloo), DDP trials in a sweep, resume and last.ckpt (a killed run
resumed: test_resume_faults.py)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dlrecipe.builders import compose
from dlrecipe.errors import ConfigError
from dlrecipe.eval import evaluate
from dlrecipe.train import main, train
from tests.checkpoint_probe import LastCkptSteps
from tests.conftest import run_main

pytestmark = pytest.mark.slow
QUIET = ["trainer.enable_progress_bar=false", "report.enabled=false"]


def cli(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dlrecipe.train", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_tests_like_one_process(run_dir: Path, tmp_path: Path, *extra: str) -> dict:
    """The DDP run's test metrics equal its best checkpoint evaluated again in this one process
    (every test sample counted once over the ranks); the one-process metrics."""
    summary = json.loads((run_dir / "summary.json").read_text())
    single = evaluate(compose([f"ckpt_path={summary['best_checkpoint']}", f"paths.output_dir={tmp_path / 'ev'}",
                               "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", *extra], "eval"))  # fmt: skip
    assert summary["test_metrics"]
    for key, value in summary["test_metrics"].items():
        assert single[key] == pytest.approx(value, abs=1e-5), key
    return single


def test_a_ddp_trial_in_a_sweep_is_one_trial_and_tests_like_one_process(tmp_path):
    import optuna

    from dlrecipe.sweep.storage import make_storage

    args = ["hparams_search=wine_mlp_search", "trainer=ddp_cpu", "hydra.sweeper.n_trials=2", "trainer.max_epochs=1",
            *QUIET, f"hydra.sweep.dir={tmp_path / 'sweep'}"]  # fmt: skip
    result = cli(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(
        study_name="wine_mlp_search",
        storage=make_storage(str(tmp_path / "sweep" / "study.journal")),
    )
    assert len(study.trials) == 2
    assert sorted(p.name for p in (tmp_path / "sweep").glob("trial_*")) == ["trial_0", "trial_1"]
    assert not list(tmp_path.glob("outputs"))  # no stray sweep started by a re-launched rank
    # In-memory data (the wine table): the ranks' shards of the test split add up to the split,
    # nothing padded or counted twice, so the DDP test metrics are a one-process evaluation's.
    assert_tests_like_one_process(tmp_path / "sweep" / "trial_1", tmp_path)


def test_resume_errors(make_cfg, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"has no checkpoints/last\.ckpt"):
        train(make_cfg(f"resume={tmp_path / 'empty'}"))
    with pytest.raises(ConfigError, match="is not a directory"):
        train(make_cfg(f"resume={tmp_path / 'nowhere'}"))


def test_global_batch_must_divide_over_devices(tmp_path, capfd, monkeypatch):
    # Refused before Lightning starts the second rank, so this runs in this process.
    from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    def launch(*args, **kwargs):
        raise AssertionError("the DDP ranks were started before the batch size was checked")

    monkeypatch.setattr(_SubprocessScriptLauncher, "launch", launch)
    args = ["dlrecipe-train", "trainer=ddp_cpu", "data.batch_size=63", "trainer.max_epochs=1", *QUIET,
            f"hydra.run.dir={tmp_path / 'r'}"]  # fmt: skip
    assert run_main(main, args, cwd=tmp_path) != 0
    err = capfd.readouterr().err
    assert "data.batch_size=63 is the global batch and must divide evenly over 2 devices" in err


def test_gpu_trainers_without_a_gpu_say_what_to_use(make_cfg):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for trainer in ("gpu", "ddp"):
        with pytest.raises(ConfigError, match="trainer=ddp_cpu"):
            train(make_cfg(f"trainer={trainer}", quick=False))


@pytest.mark.parametrize("launcher", ["local", "parallel"])
def test_ddp_trials_through_submitit_and_joblib_launchers(tmp_path, launcher):
    import optuna

    from dlrecipe.sweep.storage import make_storage

    args = ["hparams_search=wine_mlp_search", f"hydra/launcher={launcher}", "trainer=ddp_cpu", "hydra.sweeper.n_trials=2",
            "hydra.sweeper.n_jobs=2", "trainer.max_epochs=1", *QUIET, f"hydra.sweep.dir={tmp_path / 'sweep'}"]  # fmt: skip
    # The sweep's own process only hands the trials to the launcher: its main() runs in this
    # process; each trial is a process of the launcher's, which re-launches its second rank.
    assert run_main(main, ["dlrecipe-train", *args], cwd=tmp_path) == 0
    study = optuna.load_study(
        study_name="wine_mlp_search",
        storage=make_storage(str(tmp_path / "sweep" / "study.journal")),
    )
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    for n in range(2):  # each trial's second rank ran inside that trial's directory
        assert (tmp_path / "sweep" / f"trial_{n}" / "train_ddp_process_1.log").is_file()


def test_wandb_resumes_the_same_run(tmp_path, monkeypatch):
    # In this process, as each run's own main(): resume= finds the run id in the run's wandb/
    # folder, not in anything this process remembers (wandb.finish() ends the first run).
    monkeypatch.setenv("WANDB_MODE", "offline")
    run = tmp_path / "run"
    first = ["dlrecipe-train", "experiment=wine_mlp", "logger=wandb", "trainer.max_epochs=2", *QUIET,
             f"hydra.run.dir={run}"]  # fmt: skip
    assert run_main(main, first, cwd=tmp_path) == 0
    second = ["dlrecipe-train", f"resume={run}", "trainer.max_epochs=3", *QUIET]
    assert run_main(main, second, cwd=tmp_path) == 0
    ids = {p.name.rsplit("-", 1)[-1] for p in (run / "wandb").glob("offline-run-*")}
    assert len(list((run / "wandb").glob("offline-run-*"))) == 2 and len(ids) == 1
    assert json.loads((run / "summary.json").read_text())["epochs_run"] == 3


def test_mixed_precision_trains_on_cpu(make_cfg):
    value = train(make_cfg("trainer.precision=bf16-mixed", "trainer.max_epochs=1"))
    # Finite and learned: below the loss of a uniform guess over the 10 digits.
    assert math.isfinite(value) and 0 < value < math.log(10)


WINE_STEPS = ["experiment=wine_mlp", "data.batch_size=16", "callbacks.early_stopping=null",
              "report.enabled=false"]  # fmt: skip


def test_last_ckpt_every_n_steps_adds_step_saves_to_the_epoch_saves(make_cfg, tmp_path):
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    train(make_cfg(*WINE_STEPS, "trainer.max_epochs=2", "callbacks.last_checkpoint.every_n_train_steps=3",
                   "+callbacks.probe._target_=tests.checkpoint_probe.LastCkptSteps", f"+callbacks.probe.path={path}"))  # fmt: skip
    probe, n = LastCkptSteps.last, 3
    per_epoch = probe.batches_per_epoch
    assert per_epoch > n and per_epoch % n, per_epoch  # epoch ends fall between step saves
    assert probe.at_epoch_end == [per_epoch, 2 * per_epoch]  # Lightning's epoch saves still happen
    assert probe.seen == sorted({*range(n, 2 * per_epoch + 1, n), per_epoch, 2 * per_epoch})


def test_a_run_shorter_than_n_steps_writes_last_ckpt_and_resumes_from_it(tmp_path):
    run = tmp_path / "run"
    args = ["dlrecipe-train", *WINE_STEPS, *QUIET, "trainer.accelerator=cpu", "trainer.max_epochs=1",
            "callbacks.last_checkpoint.every_n_train_steps=1000", f"hydra.run.dir={run}"]  # fmt: skip
    assert run_main(main, args, cwd=tmp_path) == 0
    first = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert first["epoch"] == 0 and 0 < first["global_step"] < 1000  # the epoch's save
    resume = ["dlrecipe-train", f"resume={run}", "trainer.max_epochs=2"]
    assert run_main(main, resume, cwd=tmp_path) == 0
    assert json.loads((run / "summary.json").read_text())["epochs_run"] == 2
    second = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert second["global_step"] == 2 * first["global_step"]  # went on from epoch 1, not from 0


def test_ddp_ranks_stay_in_sync_and_a_lazy_folder_tests_every_image_once(tmp_path, image_dir):
    """One DDP launch, fine-tuning in stages on a lazy image folder: blocks unfrozen during
    training stay in sync over the ranks (DDP only averages what trained when it wrapped the
    model); only rank 0 prints; lazy folders use DataLoaders, and under DDP their test split must
    not be padded with repeats: the test metrics equal a one-process evaluation's."""
    import timm

    weights = tmp_path / "test_resnet.pth"
    torch.save(timm.create_model("test_resnet").state_dict(), weights)
    args = ["trainer=ddp_cpu", "trainer.max_epochs=2", *QUIET, "model=finetune",
            "model.net.backbone.name=test_resnet", f"model.net.backbone.weights={weights}",
            "model.net.input_size=32", "model/finetuning=staged",
            "model.finetuning.stages=[{epoch:1,top:all,lr_mult:0.5}]", "data=image_folder",
            f"data.source.root={image_dir}", "data.source.max_memory_mb=0", "data.num_workers=0",
            "data.batch_size=8", "data.split.test_frac=0.25",
            "+callbacks.probe._target_=tests.ddp_probe.SaveEveryRank",
            f"+callbacks.probe.folder={tmp_path / 'ranks'}", f"hydra.run.dir={tmp_path / 'run'}"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, "-m", "dlrecipe.train", *args], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("dlrecipe run summary") == 1  # only rank 0 prints
    rank0, rank1 = (torch.load(tmp_path / "ranks" / f"rank{r}.pt") for r in (0, 1))
    start = torch.load(weights)
    key = "net.backbone.layer1.0.conv1.weight"
    assert not torch.equal(rank0[key], start["layer1.0.conv1.weight"])  # it did train
    for name, value in rank0.items():
        if value.is_floating_point() and "running" not in name:
            torch.testing.assert_close(rank1[name], value, msg=name)
    trust = "trusted_targets=[tests.ddp_probe.SaveEveryRank]"  # the probe is in the run's config
    single = assert_tests_like_one_process(tmp_path / "run", tmp_path, trust)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert single["test/acc"] == pytest.approx(summary["test_metrics"]["test/acc"], abs=1e-6)


def test_last_checkpoint_is_the_latest_epoch_not_the_best(make_cfg):
    # resume= continues from last.ckpt: it must hold the final epoch even when the best
    # checkpoint is older (Lightning's save_last="link" would point it at the best one).
    # The highest val/loss is "best": the first epoch's, as the loss falls.
    cfg = make_cfg("trainer.max_epochs=3", "callbacks.early_stopping=null", "monitor.mode=max",
                   "report.enabled=false", "extras.lint=false")  # fmt: skip
    train(cfg)
    checkpoints = Path(cfg.paths.output_dir) / "checkpoints"
    (best,) = checkpoints.glob("best-*.ckpt")
    assert torch.load(best, weights_only=True)["epoch"] < 2  # the precondition: an older best
    last = checkpoints / "last.ckpt"
    assert not last.is_symlink()
    assert torch.load(last, weights_only=True)["epoch"] == 2


def test_last_ckpt_refuses_a_negative_step_count_naming_the_key():
    from dlrecipe.callbacks.last_checkpoint import LastCheckpoint

    with pytest.raises(ConfigError, match=r"callbacks\.last_checkpoint\.every_n_train_steps=-1"):
        LastCheckpoint(every_n_train_steps=-1)
