"""README's "Adding a data set or a model", followed word for word on a penguins-like table.

    pytest tests/test_readme_recipes.py -q

The four snippets are written, exactly as README.md shows them, into a copy of conf/ and into
directories added to the dlrecipe.data.sources / dlrecipe.models.nets packages; then the
project's own config tests run on them, and the README's command trains to a sensible score.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import dlrecipe.data.sources
import dlrecipe.models.nets
from dlrecipe import builders
from tests import test_config_groups
from tests.readme_commands import snippet

SPECIES = {  # (bill length, bill depth, flipper, body mass) means, islands: like Palmer penguins
    "Adelie": ((38.8, 18.3, 190.0, 3700.0), ["Torgersen", "Biscoe", "Dream"], 152),
    "Chinstrap": ((48.8, 18.4, 196.0, 3730.0), ["Dream"], 68),
    "Gentoo": ((47.5, 15.0, 217.0, 5076.0), ["Biscoe"], 124),
}


def penguins_csv(path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for name, (means, islands, count) in SPECIES.items():
        values = rng.normal(means, (2.7, 1.2, 6.5, 450.0), size=(count, 4))
        for v in values:
            rows.append({"species": name, "island": rng.choice(islands), "bill_length_mm": v[0],
                         "bill_depth_mm": v[1], "flipper_length_mm": v[2], "body_mass_g": v[3],
                         "sex": rng.choice(["male", "female"])})  # fmt: skip
    frame = pd.DataFrame(rows).sample(frac=1.0, random_state=0)
    frame.loc[frame.index[:5], "sex"] = None  # a few gaps, as in the real file: dropna()
    frame.to_csv(path, index=False)


@pytest.fixture
def recipes(tmp_path: Path, monkeypatch) -> Path:
    conf = tmp_path / "conf"
    shutil.copytree(builders.CONF_DIR, conf)
    for name in ("conf/data/penguins.yaml", "conf/model/linear.yaml"):
        (tmp_path / name).write_text(snippet(name))
    for name, package in (("src/dlrecipe/data/sources/penguins.py", dlrecipe.data.sources),
                          ("src/dlrecipe/models/nets/linear.py", dlrecipe.models.nets)):  # fmt: skip
        folder = tmp_path / Path(name).parent
        folder.mkdir(parents=True, exist_ok=True)
        (folder / Path(name).name).write_text(snippet(name))
        monkeypatch.setattr(package, "__path__", [*package.__path__, str(folder)])
    monkeypatch.setattr(builders, "CONF_DIR", conf)
    monkeypatch.setattr(test_config_groups, "CONF_DIR", conf)
    monkeypatch.chdir(tmp_path)
    yield conf
    for module in ("dlrecipe.data.sources.penguins", "dlrecipe.models.nets.linear"):
        sys.modules.pop(module, None)


def test_recipes_pass_the_config_tests_and_train_to_a_sensible_score(recipes, make_cfg, tmp_path):
    from dlrecipe.train import train

    for name in ("data/penguins.yaml", "model/linear.yaml"):  # every key says why
        for line in (recipes / name).read_text().splitlines():
            if re.match(r"^\w+:", line):
                assert " # " in line, f"{name}: {line!r} has no comment"
    test_config_groups.test_every_config_key_has_a_comment()
    test_config_groups.test_data_options_instantiate(make_cfg, "penguins")
    test_config_groups.test_model_options_instantiate(make_cfg, "linear")

    penguins_csv(tmp_path / "penguins.csv")
    command = "data=penguins data.source.path=penguins.csv model=linear"  # the README's, verbatim
    cfg = make_cfg(*command.split(), "report.enabled=false", quick=False)
    train(cfg)
    summary = json.loads((Path(cfg.paths.output_dir) / "summary.json").read_text())

    # scikit-learn's logistic regression on the same split is the bar a linear model must meet
    frame = pd.read_csv("penguins.csv").dropna()
    y = frame.pop("species").to_numpy()
    x = pd.get_dummies(frame, dtype="float32").to_numpy(dtype="float64")
    datamodule = builders.build_data(cfg)
    fold = datamodule.fold
    fit = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    fit.fit(x[np.concatenate([fold.train, fold.val])], y[np.concatenate([fold.train, fold.val])])
    reference = fit.score(x[fold.test], y[fold.test])
    assert summary["test_metrics"]["test/acc"] >= min(0.95, reference - 0.03), reference
