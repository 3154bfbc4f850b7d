"""How much faster is feature extraction with cached backbone features?

    .venv/bin/python scripts/bench_finetune_cache.py [--backbone resnet18] [--size 32] [--epochs 5]

Runs, in one process and alternating, the same feature-extraction fit (a frozen timm backbone
with random weights, digits resized to `size`, a linear head) with
`model.finetuning.cache_features` false and true, and prints the wall time of each fit and
their ratio. Without the cache every epoch runs the frozen backbone forward over every image;
with it the backbone runs once and the epochs only train the head.
"""

from __future__ import annotations

import argparse
import statistics

from benchlib import timed_run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    common = [
        "model=finetune", f"model.net.backbone.name={args.backbone}",
        "model.net.backbone.weights=none", f"model.net.input_size={args.size}",
        "model/finetuning=feature_extraction", f"trainer.max_epochs={args.epochs}",
        "callbacks.early_stopping=null", "report.enabled=false", "logger=none",
    ]  # fmt: skip
    runs = {"uncached": [*common, "model.finetuning.cache_features=false"],
            "cached": [*common, "model.finetuning.cache_features=true"]}  # fmt: skip
    timed_run(runs["cached"])  # warm-up: imports, first-call allocations
    fit: dict[str, list[float]] = {name: [] for name in runs}
    accuracy: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, overrides in runs.items():
            _, summary = timed_run(overrides)
            fit[name].append(summary["fit_seconds"])
            accuracy[name] = summary["test_metrics"]["test/acc"]
    a, b = statistics.median(fit["uncached"]), statistics.median(fit["cached"])
    print(
        f"{args.backbone} at {args.size}x{args.size}, {args.epochs} epochs, digits (1257 training images)"
    )
    print(f"fit, features recomputed every epoch  {a:7.2f} s   test acc {accuracy['uncached']:.4f}")
    print(f"fit, features cached once             {b:7.2f} s   test acc {accuracy['cached']:.4f}")
    print(f"speed-up                              {a / b:7.2f}x")


if __name__ == "__main__":
    main()
