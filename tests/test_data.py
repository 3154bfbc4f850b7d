"""Sources, splits, normalization and batches on real data sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlrecipe.builders import build_data
from dlrecipe.data.info import infer_task
from dlrecipe.data.loaders import TensorBatches
from dlrecipe.data.normalization import Standardize
from dlrecipe.data.sources.csv_table import load_csv
from dlrecipe.data.sources.image_folder import load_image_folder
from dlrecipe.data.sources.sklearn_sets import load_sklearn
from dlrecipe.data.splits import HoldoutSplit
from dlrecipe.errors import ConfigError


@pytest.mark.parametrize(
    ("name", "task", "shape", "classes"),
    [
        ("digits", "multiclass", (1, 8, 8), 10),
        ("breast_cancer", "binary", (30,), 2),
        ("wine", "multiclass", (13,), 3),
        ("iris", "multiclass", (4,), 3),
        ("diabetes", "regression", (10,), 0),
    ],
)
def test_bundled_sets_load_offline(name, task, shape, classes):
    data = load_sklearn(name)
    assert (data.task, data.input_shape, len(data.class_names)) == (task, shape, classes)


def test_holdout_split_is_disjoint_deterministic_and_stratified():
    data = load_sklearn("digits")
    split = HoldoutSplit(val_frac=0.2, test_frac=0.1, seed=3)
    fold = split.folds(data)[0]
    again = HoldoutSplit(val_frac=0.2, test_frac=0.1, seed=3).folds(data)[0]
    other = HoldoutSplit(val_frac=0.2, test_frac=0.1, seed=4).folds(data)[0]
    assert not set(fold.train) & set(fold.val)
    assert not set(fold.train) & set(fold.test)
    assert not set(fold.val) & set(fold.test)
    assert len(fold.train) + len(fold.val) + len(fold.test) == len(data)
    assert all(np.array_equal(a, b) for a, b in zip((fold.train, fold.val, fold.test), (again.train, again.val, again.test), strict=True))  # fmt: skip
    assert not np.array_equal(fold.test, other.test)
    assert abs(len(fold.val) / len(data) - 0.2) < 0.01
    assert abs(len(fold.test) / len(data) - 0.1) < 0.01
    labels = data.targets.numpy()
    whole = np.bincount(labels) / len(labels)
    for part in (fold.train, fold.val, fold.test):
        assert np.abs(np.bincount(labels[part], minlength=10) / len(part) - whole).max() < 0.02


def test_overlapping_folds_are_refused():
    from dlrecipe.data.splits import Fold

    with pytest.raises(AssertionError, match="overlap"):
        Fold(np.array([0, 1, 2]), np.array([2, 3]), np.array([4]))


def test_normalization_uses_training_statistics_only(make_cfg):
    datamodule = build_data(make_cfg("data=wine", "model=mlp"))
    datamodule.setup("fit")
    x = datamodule.data.inputs
    train = x[torch.as_tensor(datamodule.fold.train)].double()
    everything = x.double()
    norm = datamodule.normalization
    assert torch.allclose(norm.mean.double(), train.mean(0), atol=1e-5)
    assert torch.allclose(norm.std.double(), train.std(0, unbiased=False), rtol=1e-4)
    assert not torch.allclose(norm.mean.double(), everything.mean(0), atol=1e-3)


def test_image_normalization_is_per_channel(image_dir):
    data = load_image_folder(str(image_dir))
    norm = Standardize().fit([data.inputs.float() / 255])
    assert norm.mean.shape == (1,)
    z = norm(data.inputs.float() / 255)
    assert abs(float(z.mean())) < 1e-4 and abs(float(z.std()) - 1) < 1e-2


def test_normalization_state_round_trips_through_data_state(make_cfg):
    datamodule = build_data(make_cfg("data=breast_cancer", "model=mlp"))
    datamodule.setup("fit")
    restored = build_data(make_cfg("data=breast_cancer", "model=mlp"))
    restored.load_data_state(datamodule.data_state())
    assert torch.equal(restored.normalization.mean, datamodule.normalization.mean)
    restored.setup("test")  # same split, so the stored test indices match


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (np.array([0.5, 1.25, 3.0]), "regression"),
        (np.array([0, 1, 1, 0]), "binary"),
        (np.array(["cat", "dog", "cat"]), "binary"),
        (np.array([0, 1, 2, 2, 1]), "multiclass"),
        (np.array(["a", "b", "c"]), "multiclass"),
        (np.arange(200), "regression"),
    ],
)
def test_task_is_inferred_from_the_target(values, task):
    assert infer_task(values) == task


def test_csv_source_encodes_strings_and_infers_tasks(table_csv):
    binary = load_csv(str(table_csv), "label", features=["a", "b", "colour"])
    assert binary.task == "binary" and binary.class_names == ["no", "yes"]
    assert binary.feature_names == ["a", "b", "colour_blue", "colour_green", "colour_red"]
    assert load_csv(str(table_csv), "kind", features=["a", "b"]).task == "multiclass"
    assert load_csv(str(table_csv), "value", features=["a", "b"]).task == "regression"
    forced = load_csv(str(table_csv), "value", features=["a"], task="regression")
    assert forced.targets.dtype == torch.float32


def test_image_folder_loads_classes_and_fixed_test_folder(image_dir, tmp_path):
    import shutil

    test_root = tmp_path / "test_images"
    shutil.copytree(image_dir, test_root)
    data = load_image_folder(str(image_dir), test_root=str(test_root))
    assert data.class_names == ["bars", "cols", "dots"]
    assert data.input_shape == (1, 12, 12) and data.inputs.dtype == torch.uint8
    assert len(data.test_indices) == 60
    fold = HoldoutSplit().folds(data)[0]
    assert set(fold.test) == set(data.test_indices)


def test_lazy_image_folder_gives_the_same_pixels(image_dir):
    eager = load_image_folder(str(image_dir), image_size=[10, 10])
    lazy = load_image_folder(str(image_dir), image_size=[10, 10], max_memory_mb=0)
    assert not isinstance(lazy.inputs, torch.Tensor)
    x, y = lazy.inputs[5]
    assert torch.equal(x, eager.inputs[5]) and y == int(eager.targets[5])


def test_tensor_batches_cover_every_sample_once_and_reshuffle():
    x, y = torch.arange(10).float().unsqueeze(1), torch.arange(10)
    loader = TensorBatches(x, y, torch.arange(10), 3, shuffle=True, drop_last=False, seed=1)
    first = torch.cat([b for _, b in loader])
    second = torch.cat([b for _, b in loader])
    assert sorted(first.tolist()) == list(range(10)) and not torch.equal(first, second)
    ranks = [TensorBatches(x, y, torch.arange(10), 4, rank=r, world_size=2) for r in range(2)]
    seen = sorted(int(v) for r in ranks for _, b in r for v in b)
    assert seen == list(range(10))  # evaluation under DDP: every sample counted exactly once


def test_digits_wild_poses_every_digit_once_and_for_all(make_cfg):
    """data=digits_wild: enlarged digits, each moved/zoomed/turned by a pose fixed by data.source.pose_seed."""
    datamodule = build_data(make_cfg("data=digits_wild", "seed=7"))
    data = datamodule.data
    assert data.input_shape == (1, 16, 16) and len(data) == 1797
    assert data.class_names == [str(c) for c in range(10)]
    assert torch.equal(data.targets, load_sklearn("digits").targets)
    assert float(data.inputs.min()) >= 0.0 and float(data.inputs.max()) <= 1.0
    # The run's seed changes the split, never the images: runs and folds see one data set.
    again = build_data(make_cfg("data=digits_wild", "seed=8")).data
    assert torch.equal(data.inputs, again.inputs)
    posed_otherwise = build_data(make_cfg("data=digits_wild", "data.source.pose_seed=1")).data
    unposed = build_data(make_cfg("data=digits_wild", "data.source.shift=0", "data.source.scale=0",
                                  "data.source.rotate=0")).data  # fmt: skip
    assert not torch.allclose(data.inputs, posed_otherwise.inputs, atol=0.1)
    # Posing moves ink: the mean image (the average pose) is blurrier than the unposed one's.
    assert data.inputs.mean(0).max() < unposed.inputs.mean(0).max()


def test_digits_wild_refuses_impossible_poses(make_cfg):
    with pytest.raises(ConfigError, match=r"data.source.shift=0.6"):
        _ = build_data(make_cfg("data=digits_wild", "data.source.shift=0.6")).data
    with pytest.raises(ConfigError, match=r"data.source.size=4"):
        _ = build_data(make_cfg("data=digits_wild", "data.source.size=4")).data
