"""Report parts on small arrays: calibration bins, the header read from disk, curve markers,
the Grad-CAM overlay's upsampling, tables without empty columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from dlrecipe.report import figures, mistakes, page
from dlrecipe.report.curves import plot_learning_curves, stopped_early
from dlrecipe.report.header import read_header, redact
from dlrecipe.report.mistakes import _upsample


def test_calibration_bins_hold_enough_samples_where_equal_width_bins_do_not():
    rng = np.random.default_rng(0)
    confidence = 1 - rng.beta(0.3, 8, size=360)  # a confident model: most values near 1
    equal_width = np.bincount(np.clip((confidence * 10).astype(int), 0, 9), minlength=10)
    assert 0 < equal_width[equal_width > 0].min() < 5  # the sparse bins the issue saw
    counts = np.bincount(figures.quantile_bins(confidence, bins=10, min_count=20))
    assert counts.min() >= 20 and len(counts) <= 10
    assert len(np.bincount(figures.quantile_bins(confidence[:50], 10, 20))) == 2  # 50 // 20


def test_calibration_figure_from_a_confident_model(tmp_path):
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.full(10, 0.05), size=300)
    targets = probs.argmax(1)
    with Image.open(figures.calibration(targets, probs, tmp_path / "c.png")) as img:
        assert img.format == "PNG"


def test_secrets_are_masked_in_config_and_overrides():
    text = "optuna:\n  storage: postgresql+psycopg://me:hunter2@db/x\nlogger:\n  api_key: abc123\n  token: null\n"
    masked = redact(text)
    assert "hunter2" not in masked and "me:***@db" in masked
    assert "abc123" not in masked and "token: null" in masked
    assert redact("logger.wandb.api_key=abc123") == "logger.wandb.api_key=***"
    assert redact("trainer.max_epochs=3") == "trainer.max_epochs=3"


def test_header_reads_hydra_files_as_data(tmp_path):
    run, out = tmp_path / "run", tmp_path / "run" / "report"
    (run / ".hydra").mkdir(parents=True)
    out.mkdir()
    (run / ".hydra" / "config.yaml").write_text("task_name: my_exp\nstorage: sqlite://u:pw@h/x\n")
    (run / ".hydra" / "overrides.yaml").write_text(
        "- seed=1\n- hydra.sweeper.storage=mysql://u:pw@h/db\n"
    )
    head = read_header(run, out)
    assert head.name == "my_exp" and head.config == "config.yaml" and not head.problems
    assert head.overrides == ["seed=1", "hydra.sweeper.storage=mysql://u:***@h/db"]
    assert "pw" not in (out / "config.yaml").read_text()
    # a tag that would build a Python object is refused by safe_load: named, not run
    (run / ".hydra" / "overrides.yaml").write_text("!!python/object/apply:os.system ['echo hi']\n")
    (run / ".hydra" / "config.yaml").write_text("- just\n- a list\n")
    head = read_header(run, out)
    assert (
        head.name == "run"
        and head.overrides == []
        and "not a list of overrides" in head.problems[0]
    )
    assert read_header(tmp_path, out).problems  # no .hydra at all: said, not raised


def _has_colour(png: Path, rgb: tuple[int, int, int]) -> bool:
    with Image.open(png) as img:
        pixels = np.asarray(img.convert("RGB")).reshape(-1, 3).astype(int)
    return bool((np.abs(pixels - rgb).sum(1) < 30).any())


def test_learning_curves_mark_best_epoch_and_early_stop(tmp_path):
    rows = [{"epoch": e, "train/loss": 1 / (e + 1), "val/loss": 1 / (e + 1) + 0.01 * e,
             "train/acc": 0.5, "val/acc": 0.5, "lr": 1e-3} for e in range(6)]  # fmt: skip
    green, red = (44, 160, 44), (214, 39, 40)  # matplotlib's tab:green (best), tab:red (stop)
    marked = plot_learning_curves(rows, tmp_path / "a.png", "acc", best_epoch=3, stopped_early=True)
    plain = plot_learning_curves(rows, tmp_path / "b.png", "acc")
    assert _has_colour(marked, green) and _has_colour(marked, red)
    assert not _has_colour(plain, green) and not _has_colour(plain, red)
    assert stopped_early(24, 30) and not stopped_early(30, 30) and not stopped_early(5, -1)


def test_gradcam_overlay_is_upsampled_smoothly():
    heat = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    big = _upsample(heat, 16, 16)
    assert big.shape == (16, 16) and len(np.unique(big.round(3))) > 4  # bilinear, not blocks
    assert abs(big.mean() - heat.mean()) < 0.05


def test_tables_drop_columns_empty_in_every_row():
    html = page.table([{"metric": "loss", "validation": 0.1, "test": None}])
    assert "<th>test</th>" not in html and "<th>validation</th>" in html


def _edge_is_blank(path: Path, width: int = 2) -> bool:
    """Nothing drawn on the figure's outermost pixels: no label or title was cut off."""
    with Image.open(path) as img:
        pixels = np.asarray(img.convert("L"))
    edges = [pixels[:width], pixels[-width:], pixels[:, :width], pixels[:, -width:]]
    return all((edge >= 250).all() for edge in edges)


def test_figures_without_a_layout_engine_leave_room_for_wide_tick_labels(tmp_path):
    # report/layout.py sizes margins from the tick labels' text instead of constrained layout:
    # house prices (-49800, 412000), an RMSE in thousands and a log axis under one decade
    # (minor labels 2x10^-3) must still fit inside the figure.
    rng = np.random.default_rng(0)
    prices = rng.uniform(-50_000, 412_000, 200)
    paths = [figures.regression(prices, prices + rng.normal(0, 9_000, 200), tmp_path / "r.png")]
    rows = [{"epoch": e, "train/loss": 1 / (e + 1), "val/loss": 1.2 / (e + 1),
             "train/rmse": 45_000.0 - e, "val/rmse": 47_500.0 - e, "lr": 3e-3 * 0.9**e} for e in range(12)]  # fmt: skip
    paths.append(plot_learning_curves(rows, tmp_path / "c.png", "rmse", best_epoch=9))
    labels = rng.integers(0, 2, 300)
    scores = np.clip(labels * 0.5 + rng.random(300) * 0.5, 0, 1)
    paths.append(figures.roc_pr(labels, scores, ["no", "yes"], tmp_path / "roc.png"))
    paths.append(figures.calibration(labels, scores, tmp_path / "cal.png"))
    grid = mistakes.image_grid(rng.random((11, 1, 8, 8)), ["pred 1 (0.51)\ntrue 7\nloss 2.31"] * 11,
                               tmp_path / "g.png", overlays=rng.random((11, 2, 2)))  # fmt: skip
    for path in [*paths, grid]:
        assert _edge_is_blank(path), path.name
