"""dlrecipe.compat's Optuna functions against the installed Optuna (private details can move).

python -m pytest tests/test_compat_optuna.py -q
"""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

from dlrecipe.compat import optuna_stop_requested, optuna_study_loop

SPACE = {"x": CategoricalDistribution([1, 2])}
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def brute_force_study() -> optuna.Study:
    return optuna.create_study(sampler=optuna.samplers.BruteForceSampler(seed=0))


def test_a_grid_sampler_stops_the_study_inside_the_loop():
    study = brute_force_study()
    with optuna_study_loop(study):
        study.tell(study.ask(SPACE), 0.0)
        assert not optuna_stop_requested(study)  # one grid point left
        study.tell(study.ask(SPACE), 1.0)
    assert optuna_stop_requested(study)


def test_outside_the_loop_optuna_refuses_the_stop():
    # Why optuna_study_loop exists: a sweeper's own ask/tell loop is not Study.optimize.
    study = brute_force_study()
    study.tell(study.ask(SPACE), 0.0)
    with pytest.raises(RuntimeError, match="stop"):
        study.tell(study.ask(SPACE), 1.0)
