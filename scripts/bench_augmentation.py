"""Does augmentation starve training? Steps/s with each preset vs none.

    .venv/bin/python scripts/bench_augmentation.py [--presets none,light,medium,strong]

Trains the CNN for one epoch per case (in one process, after a warm-up) on digits (1x8x8,
batch 64) and on CIFAR-sized synthetic images (3x32x32, batch 128), and prints steps/s and
the slowdown against no augmentation, with augmentation in the training process
(data.num_workers=0) and in two DataLoader workers (data.num_workers=2).
"""

from __future__ import annotations

import argparse

from benchlib import timed_run

SHORT = ["trainer.max_epochs=1", "trainer.num_sanity_val_steps=0"]
CASES = {
    "digits 1x8x8, batch 64": ["data=digits"],
    "digits, 2 workers": ["data=digits", "data.num_workers=2"],
    "synthetic 3x32x32, batch 128": [
        "data=synthetic",
        "data.source.samples=2560",
        "+trainer.limit_train_batches=15",
    ],
    "synthetic, 2 workers": [
        "data=synthetic",
        "data.source.samples=2560",
        "+trainer.limit_train_batches=15",
        "data.num_workers=2",
    ],
}


def steps_per_second(overrides: list[str]) -> float:
    return timed_run([*SHORT, *overrides])[1]["steps_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presets", default="none,light,medium,strong,randaugment,trivialaugment")
    presets = parser.parse_args().presets.split(",")
    steps_per_second(CASES["digits 1x8x8, batch 64"])  # warm-up
    print(f"{'case':32s} {'preset':15s} {'steps/s':>9s} {'vs none':>8s}")
    for case, overrides in CASES.items():
        base = None
        for preset in presets:
            rate = steps_per_second([*overrides, f"data/augmentation={preset}"])
            base = base or rate
            print(f"{case:32s} {preset:15s} {rate:9.1f} {rate / base:7.2f}x")


if __name__ == "__main__":
    main()
