"""No silent garbage: inputs that would train on nonsense are refused before training.

    python -m pytest tests/test_garbage.py -q

`CASES` is a plain table (files made on the fly, overrides, the message expected) so that a
catalogue of bad inputs can take the rows as they are: each row fails in train() with one line
naming the key or file and the fix, and leaves no summary.json and no checkpoint. The divergence
test trains for real (a huge learning rate on a regression target) and expects exit 3 with
`status: diverged`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlrecipe.builders import build_data, compose
from dlrecipe.errors import ConfigError
from dlrecipe.guards import DIVERGED_EXIT, Diverged, check_training_length, exit_on_divergence
from dlrecipe.train import train
from tests.conftest import QUICK


def _table(tmp_path: Path, n: int = 60, **edits: dict[int, float]) -> Path:
    """A regression / binary table; `edits` puts values into cells, e.g. a={3: inf}."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    frame["value"] = 2 * frame.a - frame.b
    frame["label"] = np.where(frame.a > 0, "yes", "no")
    for column, cells in edits.items():
        for row, value in cells.items():
            frame.loc[row, column] = value
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    return path


def _images(root: Path, classes=("a", "b", "c"), n: int = 6, mode: str = "L") -> Path:
    from PIL import Image

    rng = np.random.default_rng(len(classes) + n)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        shape = (12, 12) if mode == "L" else (12, 12, 3)
        for i in range(n):
            pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
            Image.fromarray(pixels, mode=mode).save(root / name / f"{mode}{i}.png")
    return root


def _truncate(file: Path) -> None:
    """Keep the header and half the pixel data: PIL opens it, decoding it fails."""
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


# -- file makers: each writes what its case needs and returns the fields of its overrides ----
def inf_feature(tmp: Path) -> dict:
    return {"csv": _table(tmp, a={3: np.inf, 8: -np.inf})}


def inf_target(tmp: Path) -> dict:
    return {"csv": _table(tmp, value={5: -np.inf})}


def nan_feature(tmp: Path) -> dict:
    return {"csv": _table(tmp, b={1: np.nan})}


def empty_file(tmp: Path) -> dict:
    (tmp / "empty.csv").write_bytes(b"")
    return {"csv": tmp / "empty.csv"}


def header_only(tmp: Path) -> dict:
    (tmp / "header.csv").write_text("a,b,value\n")
    return {"csv": tmp / "header.csv"}


def small_table(tmp: Path) -> dict:
    return {"csv": _table(tmp, n=12)}


def empty_class(tmp: Path) -> dict:
    root = _images(tmp / "images")
    (root / "nothing").mkdir()
    return {"root": root}


def single_class(tmp: Path) -> dict:
    return {"root": _images(tmp / "images", classes=("only",))}


def truncated_png(tmp: Path) -> dict:
    root = _images(tmp / "images")
    _truncate(root / "b" / "L2.png")
    return {"root": root}


def nothing(tmp: Path) -> dict:
    return {}


CSV = ("data=csv", "data.source.path={csv}", "model=mlp")
IMAGES = ("data=image_folder", "data.source.root={root}", "data.num_workers=0", "model.net.channels=[4]",
          "data.source.check_cache={tmp}/check_cache")  # fmt: skip


@dataclass(frozen=True)
class BadInput:
    id: str
    make: Callable[[Path], dict]  # writes the case's files under a temporary folder
    overrides: tuple[str, ...]  # {field}s are filled from make()'s result, {tmp} is the folder
    match: str  # a regex the one-line message must match (it names the key or file)


CASES = [
    BadInput("csv_inf_feature", inf_feature, (*CSV, "data.source.target=value"),
             r"data\.source\.path='.*table\.csv': columns \['a'\] have missing values or ±inf in 2 of 60 "
             r"rows.*data\.source\.non_finite=drop"),
    BadInput("csv_inf_regression_target", inf_target, (*CSV, "data.source.target=value"),
             r"columns \['value'\] .* 1 of 60 rows \('value': 1 inf; file lines 7\)"),
    BadInput("csv_nan_feature", nan_feature, (*CSV, "data.source.target=label"),
             r"columns \['b'\] have missing values .*'b': 1 NaN"),
    BadInput("csv_unknown_non_finite_choice", nan_feature,
             (*CSV, "data.source.target=label", "data.source.non_finite=zero"),
             r"data\.source\.non_finite='zero': choose one of \['refuse', 'drop'\]"),
    BadInput("csv_zero_bytes", empty_file, (*CSV, "data.source.target=value"),
             r"data\.source\.path='.*empty\.csv' is empty"),
    BadInput("csv_header_only", header_only, (*CSV, "data.source.target=value"),
             r"data\.source\.path='.*header\.csv' has a header but no data rows"),
    BadInput("csv_without_path", nothing, ("data=csv", "data.source.target=value", "model=mlp"),
             r"^data\.source\.path must be given for this data set: add data\.source\.path="),
    BadInput("csv_without_path_or_target", nothing, ("data=csv", "model=mlp"),
             r"^data\.source\.path and data\.source\.target must be given"),
    BadInput("kfold_k_above_samples", small_table,
             (*CSV, "data.source.target=value", "data/split=kfold", "data.split.k=20"),
             r"data\.split\.k=20 is larger than the 10 samples outside the test set"),
    BadInput("stratified_k_above_smallest_class", small_table,
             (*CSV, "data.source.target=label", "data/split=stratified_kfold", "data.split.k=8",
              "data.split.test_frac=0"),
             r"data\.split\.k=8 is larger than the smallest class"),
    BadInput("image_empty_class_folder", empty_class, IMAGES,
             r"class folder\(s\) \['nothing'\] under '.*images' hold no images"),
    BadInput("image_single_class", single_class, IMAGES,
             r"data\.source\.root='.*images' has a single class folder \('only'\)"),
    BadInput("image_truncated_png", truncated_png, IMAGES,
             r"1 image file\(s\) cannot be decoded, e\.g\. '.*b/L2\.png' \(image file is truncated\)"),
    BadInput("image_truncated_png_lazy", truncated_png, (*IMAGES, "data.source.max_memory_mb=0"),
             r"cannot be decoded, e\.g\. '.*b/L2\.png'"),
    BadInput("max_epochs_zero", nothing, ("experiment=iris_mlp", "trainer.max_epochs=0"),
             r"trainer\.max_epochs=0 trains nothing"),
    BadInput("max_epochs_negative", nothing, ("experiment=iris_mlp", "trainer.max_epochs=-3"),
             r"trainer\.max_epochs=-3 trains nothing"),
    BadInput("max_epochs_fraction", nothing, ("experiment=iris_mlp", "trainer.max_epochs=1.5"),
             r"trainer\.max_epochs=1\.5 must be a whole number"),
    BadInput("max_epochs_endless", nothing, ("experiment=iris_mlp", "trainer.max_epochs=-1"),
             r"trainer\.max_epochs=-1 trains for ever unless \+trainer\.max_steps=N"),
    BadInput("max_steps_zero", nothing, ("experiment=iris_mlp", "+trainer.max_steps=0"),
             r"trainer\.max_steps=0 trains nothing"),
]  # fmt: skip


def overrides_for(case: BadInput, tmp_path: Path) -> list[str]:
    fields = {"tmp": tmp_path, **case.make(tmp_path)}
    return [o.format(**fields) for o in case.overrides]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refused_before_training(case: BadInput, tmp_path: Path):
    run_dir = tmp_path / "run"
    cfg = compose([*QUICK, f"paths.output_dir={run_dir}", *overrides_for(case, tmp_path)])
    with pytest.raises(ConfigError, match=case.match) as refused:
        train(cfg)
    assert "\n" not in str(refused.value)  # one line
    assert not (run_dir / "summary.json").exists()  # nothing was trained
    assert not list(run_dir.rglob("*.ckpt"))


def test_non_finite_drop_trains_without_those_rows_and_says_so(tmp_path):
    csv = _table(tmp_path, a={3: np.inf}, value={9: np.nan})
    run_dir = tmp_path / "run"
    cfg = compose([*QUICK, "trainer.max_epochs=1", "report.enabled=false", f"paths.output_dir={run_dir}",
                   *CSV[:1], f"data.source.path={csv}", "model=mlp", "data.source.target=value",
                   "data.source.non_finite=drop"])  # fmt: skip
    train(cfg)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert any("left out 2 of 60 rows" in note for note in summary["notes"])
    assert np.isfinite(summary["test_metrics"]["test/loss"])


def test_mixed_grey_and_colour_images_are_read_as_rgb_with_a_note(tmp_path):
    root = _images(tmp_path / "images", classes=("a", "b"))  # grey files sort first ...
    _images(root, classes=("b",), mode="RGB")  # ... so the first file is grey
    overrides = [*QUICK, f"data.source.root={root}", f"data.source.check_cache={tmp_path}/cache",
                 "data.num_workers=0"]  # fmt: skip
    data = build_data(compose(["data=image_folder", *overrides])).data
    assert data.input_shape == (3, 12, 12)
    assert any("data.source.channels=1" in n and "6 colour" in n for n in data.notes)
    grey = build_data(compose(["data=image_folder", *overrides, "data.source.channels=1"])).data
    assert grey.input_shape == (1, 12, 12)  # the user's explicit choice, noted
    assert any("6 colour image(s) are converted to grey" in n for n in grey.notes)


def test_image_checks_are_cached_and_a_changed_file_is_checked_again(tmp_path):
    root = _images(tmp_path / "images")
    overrides = ["data=image_folder", f"data.source.root={root}", f"data.source.check_cache={tmp_path}/cache",
                 "data.num_workers=0"]  # fmt: skip
    assert len(build_data(compose(overrides)).data) == 18
    (cache,) = (tmp_path / "cache").glob("*.json")
    assert len(json.loads(cache.read_text())["verdicts"]) == 18  # every file, decoded once
    _truncate(root / "c" / "L4.png")  # its size changes, so its cached verdict no longer counts
    with pytest.raises(ConfigError, match=r"'.*c/L4\.png' \(image file is truncated\)"):
        assert build_data(compose(overrides)).data is None  # never reached: refused


def test_a_malformed_cache_is_ignored_and_rewritten(tmp_path):
    root = _images(tmp_path / "images")
    overrides = ["data=image_folder", f"data.source.root={root}", f"data.source.check_cache={tmp_path}/cache",
                 "data.num_workers=0"]  # fmt: skip
    assert len(build_data(compose(overrides)).data) == 18
    (cache,) = (tmp_path / "cache").glob("*.json")
    for text in ("{not json", '{"version": 1, "verdicts": {"x": "ok"}}', "[]", ""):
        cache.write_text(text)
        assert len(build_data(compose(overrides)).data) == 18
        assert len(json.loads(cache.read_text())["verdicts"]) == 18


def test_endless_epochs_with_a_step_limit_are_allowed():
    check_training_length(compose(["trainer.max_epochs=-1", "+trainer.max_steps=5"]))


def test_a_diverging_loss_stops_the_run_with_exit_3_and_no_result(tmp_path, capsys):
    run_dir = tmp_path / "run"
    csv = _table(tmp_path, n=200)
    cfg = compose([*QUICK, f"paths.output_dir={run_dir}", *CSV[:1], f"data.source.path={csv}",
                   "model=mlp", "data.source.target=value", "model.optimizer.lr=1e30"])  # fmt: skip
    with pytest.raises(SystemExit) as stopped:
        exit_on_divergence(train)(cfg)
    assert stopped.value.code == DIVERGED_EXIT == 3
    err = capsys.readouterr().err
    assert "training diverged: the training loss became nan at epoch 1" in err  # 1-based
    for advice in ("model.optimizer.lr=0.001", "trainer.gradient_clip_val=1.0", "unscaled"):
        assert advice in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged" and "training diverged" in summary["diagnosis"]
    assert summary["best_checkpoint"] is None
    assert summary["val_metrics"] == {} and summary["test_metrics"] == {}
    assert summary["optimized_value"] is None
    assert not list(run_dir.rglob("best*.ckpt"))
    from dlrecipe.report.__main__ import main as report_main

    assert report_main([str(run_dir)]) == 2  # no report of a result it does not have
    assert "diverged (summary.json status: diverged)" in capsys.readouterr().err


def test_a_diverged_fold_leaves_no_cross_validated_score(tmp_path):
    from dlrecipe.cv.summary import aggregate, fold_run_dirs

    run_dir = tmp_path / "run"
    cfg = compose([*QUICK, f"paths.output_dir={run_dir}", *CSV[:1], f"data.source.path={_table(tmp_path)}",
                   "model=mlp", "data.source.target=value", "model.optimizer.lr=1e30", "data/split=kfold",
                   "data.split.k=2", "report.enabled=false"])  # fmt: skip
    with pytest.raises(Diverged):
        train(cfg)
    (fold_dir,) = fold_run_dirs(run_dir)  # the first fold stopped the run
    assert json.loads((fold_dir / "summary.json").read_text())["fold"] == "fold0"
    with pytest.raises(ConfigError, match=r"\['fold0'\] .* diverged"):
        aggregate([fold_dir], run_dir)
