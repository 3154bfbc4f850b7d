"""Every sweep preset works with every split and every sampler shipped in hydra/sweeper/sampler.

pytest tests/test_sweep_presets.py -q
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from dlrecipe.builders import CONF_DIR
from dlrecipe.errors import ConfigError
from dlrecipe.sweep.space import build_space, on_grid
from dlrecipe.sweep.storage import make_storage


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


PRESETS = options("hparams_search")
SPLITS = options("data/split")
SAMPLERS = options("hydra/sweeper/sampler")


def test_every_preset_split_and_sampler_compose_into_a_sweep_that_can_start():
    """Compose each preset with each split and with each sampler, build its sampler, split and
    search space as the sweeper does. The split and the sampler do not meet (the split is
    instantiated alone, the space depends on the preset and the sampler), so every pair of them
    is covered: each split under the default sampler, each sampler under the hold-out split."""
    assert "cmaes" in SAMPLERS and "grid" in SAMPLERS and len(PRESETS) >= 2
    pairs = {(s, "tpe") for s in SPLITS} | {("holdout", s) for s in SAMPLERS}
    checked = 0
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        for preset in PRESETS:
            for split, sampler in sorted(pairs):
                overrides = [f"hparams_search={preset}", f"data/split={split}",
                             f"hydra/sweeper/sampler={sampler}"]  # fmt: skip
                if split == "group_kfold":
                    overrides.append("data.split.groups=[0,1]")
                cfg = compose("train", overrides=overrides, return_hydra_config=True)
                instantiate(cfg.data.split)  # a hold-out key on a K-fold split fails here
                built = instantiate(cfg.hydra.sweeper.sampler)
                assert isinstance(built, optuna.samplers.BaseSampler)
                space, _ = build_space(cfg.hydra.sweeper.params, [], cfg)
                if sampler == "grid":  # every key enumerable: Optuna's grid refuses the rest
                    assert not any(
                        isinstance(d, FloatDistribution) and d.step is None for d in space.values()
                    ), (preset, split)
                checked += 1
    assert checked == len(PRESETS) * (len(SPLITS) + len(SAMPLERS) - 1)


def test_cmaes_backend_is_installed():
    import cmaes  # Optuna imports it lazily, at the first relative sample: a sweep would fail late

    optimizer = cmaes.CMA(mean=np.zeros(2), sigma=1.0, seed=0)  # one ask/tell round trip
    candidates = [optimizer.ask() for _ in range(optimizer.population_size)]
    optimizer.tell([(x, float(x @ x)) for x in candidates])
    assert optimizer.generation == 1 and candidates[0].shape == (2,)


def test_a_continuous_interval_becomes_grid_points_or_a_clear_error():
    lr = FloatDistribution(1e-4, 1e-1, log=True)
    grid = on_grid("model.optimizer.lr", lr, 4)
    assert grid.choices == (1e-4, 1e-3, 1e-2, 1e-1)
    assert on_grid("d", FloatDistribution(0.0, 0.5), 3).choices == (0.0, 0.25, 0.5)
    with pytest.raises(ConfigError, match=r"model\.optimizer\.lr: grid search needs finite"):
        on_grid("model.optimizer.lr", lr, 0)  # Optuna's BruteForceSampler named directly


def _sweep(monkeypatch, sweep_dir: Path, *overrides: str) -> optuna.Study:
    """One real sweep in this process, through the same Hydra entry point as the CLI."""
    from dlrecipe.train import main

    argv = ["dlrecipe.train", *overrides, "trainer.max_epochs=1", "report.enabled=false",
            "trainer.enable_progress_bar=false", "logger=none", f"hydra.sweep.dir={sweep_dir}"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    main()
    name = next(o.split("=", 1)[1] for o in overrides if o.startswith("hparams_search="))
    return optuna.load_study(
        study_name=name, storage=make_storage(str(sweep_dir / "study.journal"))
    )


# Each preset once with hold-out and once with K-fold; the samplers that failed before get a turn.
RUNS = [
    ("wine_mlp_search", ["hydra/sweeper/sampler=cmaes", "hydra.sweeper.n_trials=2"]),
    ("wine_mlp_search", ["data/split=stratified_kfold", "data.split.k=2",
                         "hydra/sweeper/sampler=grid", "hydra.sweeper.n_trials=1"]),
    ("digits_lr_bs", ["hydra.sweeper.n_trials=1", "data.batch_size=128"]),  # pinned: fewer steps
    ("digits_lr_bs", ["data/split=kfold", "data.split.k=2", "hydra.sweeper.n_trials=1",
                      "data.batch_size=128"]),
]  # fmt: skip


@pytest.mark.parametrize(("preset", "extra"), RUNS, ids=lambda v: v if isinstance(v, str) else "")
def test_each_preset_completes_a_real_trial(monkeypatch, tmp_path, preset, extra):
    monkeypatch.chdir(tmp_path)
    study = _sweep(monkeypatch, tmp_path / "sweep", f"hparams_search={preset}", *extra)
    states = [t.state for t in study.trials]
    errors = [t.user_attrs.get("error") for t in study.trials]
    assert states and all(s == TrialState.COMPLETE for s in states), errors
    if any("kfold" in o for o in extra):  # the trial's value is the fold mean
        assert (tmp_path / "sweep" / "trial_0" / "cv_summary.json").is_file()
