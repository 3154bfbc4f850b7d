"""Peak memory of a run on an image folder at two sizes, and what each extra image costs.

    .venv/bin/python scripts/bench_memory.py [--sizes 500 2000] [-- extra dlrecipe overrides]

Writes folders of 64x64 RGB PNGs (two classes, noise over a class colour) under a temporary
directory, runs `python -m dlrecipe.train data=image_folder` on each in a fresh process (one
short epoch of a narrow CNN: the data set-up, not training, is what grows with the folder) and
reads the peak
resident memory of that process and its data workers from the kernel (wait4). The slope between
the two sizes is the memory each image costs; a 64x64 RGB image is 12 KiB as uint8, so about
that much is the floor for a folder kept in memory. Goal: at most 30 KB per image.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SIDE = 64
# A narrow CNN on small batches: its activations (hundreds of MB for the default CNN at batch
# 64 on 64x64 images, the same at every folder size) would otherwise set the peak and hide
# what the data costs.
SMALL_STEPS = ["data.batch_size=16", "data.eval_batch_size=16", "model.net.channels=[8,16]"]


def write_folder(root: Path, n: int, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label in range(2):
        (root / f"class{label}").mkdir(parents=True)
    colours = np.array([[200, 60, 60], [60, 60, 200]], dtype=np.int16)
    for i in range(n):
        label = i % 2
        noise = rng.integers(-40, 40, size=(SIDE, SIDE, 3), dtype=np.int16)
        pixels = np.clip(colours[label] + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels, "RGB").save(root / f"class{label}" / f"{i:06d}.png")


def peak_rss_bytes(root: Path, overrides: list[str], cache: Path) -> int:
    """Peak RSS (bytes) of one `python -m dlrecipe.train` process on the folder at `root`."""
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable, "-m", "dlrecipe.train", "data=image_folder", f"data.source.root={root}",
            f"data.source.check_cache={cache}", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=2", "report.enabled=false", "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false", f"hydra.run.dir={out}",
            *SMALL_STEPS, *overrides,
        ]  # fmt: skip
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        err = proc.stderr.read().decode()
        proc.stderr.close()
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"the run on {root} failed:\n{err[-3000:]}")
    return usage.ru_maxrss * 1024  # Linux reports kilobytes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs=2, default=[500, 2000])
    parser.add_argument("overrides", nargs="*", help="extra dlrecipe overrides (after --)")
    args = parser.parse_args()
    small, large = sorted(args.sizes)
    peaks = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (small, large):
            root = Path(tmp) / f"images{n}"
            write_folder(root, n)
            peaks[n] = peak_rss_bytes(root, args.overrides, Path(tmp) / "checks")
            print(f"{n:6d} images  peak RSS {peaks[n] / 2**20:7.1f} MiB")
    per_image = (peaks[large] - peaks[small]) / (large - small)
    uint8 = 3 * SIDE * SIDE
    print(
        f"per_image_kb {per_image / 1000:.1f} (uint8 image {uint8 / 1000:.1f} KB, "
        f"{per_image / uint8:.1f}x; goal <= 30 KB)"
    )


if __name__ == "__main__":
    main()
