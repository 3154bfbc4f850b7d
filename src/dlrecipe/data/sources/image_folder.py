"""Your own images: a folder with one sub-folder per class (torchvision's ImageFolder layout).

    python -m dlrecipe.train data=image_folder data.source.root=path/to/train model=cnn

Optional `data.source.val_root` / `data.source.test_root` hold fixed validation / test images with the same
class sub-folders; otherwise the hold-out split carves them from `data.source.root`. Images are
resized to `data.source.image_size` and kept as uint8; folders that fit in `data.source.max_memory_mb` are
decoded once into memory (fast path), larger ones are read lazily by DataLoader workers.

Refused at set-up, before any training: an empty class folder (a phantom class), a single class,
and files that cannot be fully decoded (image_checks.py; verdicts cached). Mixed grey and colour
files are all read as RGB with a note, unless `data.source.channels=1` asks for grey.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from dlrecipe.data.info import classification_task
from dlrecipe.data.sources.base import SourceData
from dlrecipe.data.sources.image_checks import mode_choice, verify_images
from dlrecipe.errors import ConfigError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


class ImageFiles(Dataset):
    """(path, label) pairs decoded on access to uint8 (C, H, W) tensors of one fixed size."""

    def __init__(self, files: list[Path], labels: list[int], size: tuple[int, int], mode: str):
        self.files, self.labels, self.size, self.mode = files, labels, size, mode

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return read_image(self.files[i], self.size, self.mode), self.labels[i]


def read_image(path: Path, size: tuple[int, int], mode: str) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert(mode).resize((size[1], size[0]))
        array = np.asarray(img, dtype=np.uint8)
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return torch.from_numpy(array.copy())


def list_images(
    root: str | Path, classes: list[str] | None = None
) -> tuple[list[Path], list[int], list[str]]:
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise ConfigError(
            f"image folder {str(folder)!r} does not exist. Fix: data.source.root=<a folder of class sub-folders>"
        )
    found = sorted(d.name for d in folder.iterdir() if d.is_dir())
    own_classes = not classes  # the training folder defines the classes
    classes = classes or found
    if not classes:
        raise ConfigError(
            f"{str(folder)!r} has no class sub-folders (expected root/<class>/<image>)"
        )
    extra = sorted(set(found) - set(classes))
    if extra:
        raise ConfigError(
            f"{str(folder)!r} has classes {extra} that data.source.root does not have"
        )
    files, labels, empty = [], [], []
    for label, name in enumerate(classes):
        found_here = [
            f for f in sorted((folder / name).rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES
        ]
        files += found_here
        labels += [label] * len(found_here)
        if not found_here:
            empty.append(name)
    suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
    if not files:
        raise ConfigError(f"no images ({suffixes}) under {str(folder)!r}")
    if empty and own_classes:  # a class without images would still get an output unit
        raise ConfigError(
            f"class folder(s) {empty} under {str(folder)!r} hold no images ({suffixes}); add "
            "their images or remove the folders (data.source.root=<a folder of class sub-folders>)"
        )
    if len(classes) == 1:
        raise ConfigError(
            f"data.source.root={str(folder)!r} has a single class folder ({classes[0]!r}): there is "
            "nothing to tell apart; give one sub-folder per class, two or more"
        )
    return files, labels, classes


def load_image_folder(
    root: str,
    val_root: str | None = None,
    test_root: str | None = None,
    image_size: list[int] | int | None = None,
    channels: int | None = None,
    max_memory_mb: int = 2048,
    decode_workers: int = 0,
    check_cache: str | None = None,
) -> SourceData:
    files, labels, classes = list_images(root)
    parts = {"val": val_root, "test": test_root}
    marks: dict[str, np.ndarray] = {}
    for part, folder in parts.items():
        if folder:
            extra_files, extra_labels, _ = list_images(folder, classes)
            marks[part] = np.arange(len(files), len(files) + len(extra_files))
            files += extra_files
            labels += extra_labels
    from PIL import Image

    if channels is not None and channels not in (1, 3):
        raise ConfigError(f"data.source.channels={channels}: use 1 (grayscale) or 3 (RGB)")
    modes = verify_images(files, root, check_cache, decode_workers)  # lazy folders too
    channels, notes = mode_choice(modes, channels)
    with Image.open(files[0]) as first:
        first_size = (first.height, first.width)
    size = _size(image_size) if image_size else first_size
    dataset = ImageFiles(files, labels, size, "L" if channels == 1 else "RGB")
    inputs: torch.Tensor | Dataset = dataset
    if len(files) * channels * size[0] * size[1] <= max_memory_mb * 2**20:
        loader = DataLoader(dataset, batch_size=256, num_workers=decode_workers)
        # Filled batch by batch: concatenating a list of batches held the folder twice at once.
        inputs = torch.empty((len(files), channels, *size), dtype=torch.uint8)
        start = 0
        for x, _ in loader:
            inputs[start : start + len(x)] = x
            start += len(x)
    return SourceData(
        inputs,
        torch.as_tensor(labels, dtype=torch.long),
        classification_task(len(classes)),
        class_names=classes,
        input_shape=(channels, *size),
        val_indices=marks.get("val"),
        test_indices=marks.get("test"),
        notes=notes,
    )


def _size(image_size: list[int] | int) -> tuple[int, int]:
    if isinstance(image_size, int):
        return (image_size, image_size)
    if len(image_size) != 2 or min(image_size) < 1:
        raise ConfigError(
            f"data.source.image_size={image_size}: give [height, width] or one integer"
        )
    return (int(image_size[0]), int(image_size[1]))
