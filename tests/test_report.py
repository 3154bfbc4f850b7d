"""Run reports: a static page whose images all exist, the right plots per task, worst mistakes, Grad-CAM."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from dlrecipe.models.nets.cnn import CNN
from dlrecipe.report import inside, mistakes
from dlrecipe.report.__main__ import main as report_main
from dlrecipe.train import train

REPORT = "report.enabled=true"  # make_cfg's quick runs leave the report out


class Sources(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.headings, self._in_h2 = [], [], False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        self._in_h2 = tag == "h2"

    def handle_data(self, data):
        if self._in_h2:
            self.headings.append(data)
            self._in_h2 = False


def parse(index: Path) -> Sources:
    parser = Sources()
    parser.feed(index.read_text())
    return parser


def assert_images_are_pngs(index: Path, parsed: Sources) -> None:
    assert parsed.images
    for src in parsed.images:
        path = (index.parent / src).resolve()
        assert path.is_file(), src
        with Image.open(path) as img:
            img.verify()
            assert img.format == "PNG", src


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    from dlrecipe.builders import compose

    out = tmp_path_factory.mktemp("digits")
    cfg = compose(["trainer.accelerator=cpu", "trainer.max_epochs=3", "trainer.enable_progress_bar=false",
                   "callbacks.progress_bar=null", "callbacks.model_summary=null", f"paths.output_dir={out}",
                   "logger=many"])  # fmt: skip
    train(cfg)
    return out


@pytest.mark.slow
def test_image_run_report_has_every_section_and_valid_pngs(digits_run):
    index = digits_run / "report" / "index.html"
    parsed = parse(index)
    assert_images_are_pngs(index, parsed)
    headings = " | ".join(parsed.headings)
    for expected in ("Learning curves", "Confusion matrix", "Per-class", "ROC", "Calibration", "Worst mistakes",
                     "Correct but least confident", "Grad-CAM", "Intermediate activations", "First-layer filters"):  # fmt: skip
        assert expected in headings, expected


@pytest.mark.slow
def test_report_folder_is_self_contained(digits_run):
    """Every image and link of the page points inside report/: the folder can be shared alone."""
    text = (digits_run / "report" / "index.html").read_text()
    assert "../" not in text
    assert (digits_run / "report" / "learning_curves.png").is_file()


@pytest.mark.slow
def test_worst_mistakes_are_wrong_and_least_confident_are_right(digits_run):
    table = pd.read_csv(digits_run / "test_predictions.csv")
    probs = table[[f"prob_{c}" for c in range(10)]].to_numpy()
    targets = table["target"].astype(int).to_numpy()
    losses = mistakes.per_sample_loss(probs, targets, "multiclass")
    wrong, unsure = mistakes.split_by_correctness(probs, targets, losses, "multiclass", 16)
    assert (probs[wrong].argmax(1) != targets[wrong]).all()
    assert (probs[unsure].argmax(1) == targets[unsure]).all()
    n_wrong = int((probs.argmax(1) != targets).sum())
    assert len(wrong) == min(16, n_wrong) and len(unsure) == 16
    headings = " | ".join(parse(digits_run / "report" / "index.html").headings)
    assert f"Worst mistakes ({min(16, n_wrong)} wrong predictions" in headings


@pytest.mark.slow
def test_report_time_is_recorded_and_counted_in_wall_time(digits_run):
    summary = json.loads((digits_run / "summary.json").read_text())
    assert summary["report_seconds"] > 0
    assert summary["total_seconds"] >= summary["fit_seconds"] + summary["report_seconds"]


@pytest.mark.slow
def test_filter_patterns_only_for_large_enough_images(digits_run):
    out = digits_run / "report"
    assert not (out / "filter_patterns.png").exists()  # 8x8 digits: below the 32 px default
    assert "below report.filter_patterns_min_size=32" in (out / "index.html").read_text()
    assert report_main([str(digits_run), "--filter-patterns-min-size", "8", "--worst-k", "4"]) == 0
    assert (out / "filter_patterns.png").is_file()
    assert "What filters of" in (out / "index.html").read_text()


@pytest.mark.slow
def test_report_images_reach_tensorboard(digits_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(digits_run / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert {"report/confusion_matrix", "report/gradcam"} <= set(events.Tags()["images"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("experiment", "expected", "absent"),
    [
        ("breast_cancer_mlp", ["ROC", "Calibration", "Worst"], ["Grad-CAM"]),
        (
            "diabetes_mlp",
            ["Predicted vs true", "Largest errors"],
            ["Confusion matrix", "Grad-CAM", "least confident"],
        ),
    ],
)
def test_table_run_reports(make_cfg, experiment, expected, absent):
    cfg = make_cfg(f"experiment={experiment}", REPORT)
    train(cfg)
    index = Path(cfg.paths.output_dir) / "report" / "index.html"
    parsed = parse(index)
    assert_images_are_pngs(index, parsed)
    headings = " | ".join(parsed.headings)
    assert all(e in headings for e in expected) and not any(a in headings for a in absent)
    # per-task tables without empty columns: regression predicts values, not probabilities
    probability_column = "<th>probability</th>" in index.read_text()
    assert probability_column == (experiment != "diabetes_mlp")


def test_worst_picks_the_highest_losses():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.99, 0.01]])
    targets = np.array([1, 1, 0, 1])
    losses = mistakes.per_sample_loss(probs, targets, "multiclass")
    assert np.allclose(losses, -np.log([0.1, 0.8, 0.6, 0.01]))
    assert mistakes.worst(losses, 2).tolist() == [3, 0]
    binary = mistakes.per_sample_loss(np.array([0.9, 0.2]), np.array([0, 0]), "binary")
    assert mistakes.worst(binary, 1).tolist() == [0]
    assert mistakes.worst(
        mistakes.per_sample_loss(np.array([1.0, 5.0]), np.array([1.0, 1.0]), "regression"), 1
    ).tolist() == [1]


@pytest.mark.slow
def test_the_run_reports_its_highest_loss_test_samples(digits_run):
    table = pd.read_csv(digits_run / "test_predictions.csv")
    classes = [str(i) for i in range(10)]
    probs = table[[f"prob_{c}" for c in classes]].to_numpy()
    targets = table["target"].astype(str).map(classes.index).to_numpy()
    losses = mistakes.per_sample_loss(probs, targets, "multiclass")
    chosen = mistakes.worst(losses, 16)
    assert losses[chosen].min() >= np.delete(losses, chosen).max()


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 12, 12)])
def test_gradcam_maps_have_the_input_size(shape):
    net = CNN(shape, 4, channels=[8, 16])
    net.eval()
    name, layer = inside.target_layer(net)
    assert name == list(inside.conv_layers(net))[-1] == "features.10"  # the last convolution
    maps = inside.gradcam(net, torch.randn(5, *shape), [0, 1, 2, 3, 0], layer, "multiclass")
    assert maps.shape == (5, shape[1], shape[2])
    assert maps.min() >= 0 and maps.max() <= 1


@pytest.mark.slow
def test_report_command_rebuilds_the_report(digits_run):
    index = digits_run / "report" / "index.html"
    index.unlink()
    assert report_main([str(digits_run), "--target-layer", "net.features.3", "--worst-k", "4"]) == 0
    assert "Grad-CAM on net.features.3" in index.read_text()


@pytest.mark.slow
def test_report_command_bad_input(digits_run, tmp_path, capsys):
    assert report_main([str(digits_run), "--target-layer", "net.nothing"]) == 2
    assert "report.target_layer='net.nothing' is not a layer" in capsys.readouterr().err
    assert report_main([str(tmp_path)]) == 2
    assert "has no checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_kfold_folds_skip_their_report_and_build_it_on_demand(make_cfg):
    cfg = make_cfg("experiment=iris_mlp", "data/split=stratified_kfold", "data.split.k=3",
                   "trainer.max_epochs=1", REPORT)  # fmt: skip
    train(cfg)
    run = Path(cfg.paths.output_dir)
    text = (run / "report" / "index.html").read_text()
    assert "fold ensemble" in text and "mean" in text
    assert not any((run / f"fold{i}" / "report").exists() for i in range(3))
    assert f"python -m dlrecipe.report {run / 'fold0'}" in text  # the one command, whole
    assert report_main([str(run / "fold1")]) == 0
    assert (run / "fold1" / "report" / "index.html").is_file()


def test_reports_are_off_in_sweep_trials_unless_asked(make_cfg):
    from dlrecipe.report.build import report_wanted
    from dlrecipe.report.summary import RunSummary

    plain = RunSummary("run", "multiclass", "acc")
    fold = RunSummary("run", "multiclass", "acc", fold="fold0")
    assert report_wanted(make_cfg(REPORT), plain) and not report_wanted(make_cfg(REPORT), fold)
    trial = make_cfg("+optuna.trial_number=3", REPORT)
    assert not report_wanted(trial, plain)
    assert report_wanted(
        make_cfg("+optuna.trial_number=3", "report.in_trials_and_folds=true", REPORT), plain
    )
    assert not report_wanted(make_cfg("report.enabled=false"), plain)
