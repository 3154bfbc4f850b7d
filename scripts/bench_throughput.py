"""dlrecipe vs a hand-written PyTorch loop: steps/s, their ratio and the fixed overhead per step.

    make bench          # or: .venv/bin/python scripts/bench_throughput.py [--repeats 3] [--threads 1]

For each case both sides train the same net (built by dlrecipe's own nets, same initial
weights), on the same normalized data in the same order, with the same optimizer, batch size
and epochs, and both validate once per epoch. Both are timed in steady state, from the second
epoch to the end (fit set-up and the first epoch's allocations left out). The raw loop is what a careful hand-written
script does: tensors in memory, batches by index, loss and accuracy summed on the device and
read once per epoch. dlrecipe runs its default callbacks (checkpoints, early stopping, LR
monitor, progress bar, history) and the CSV logger. Runs alternate and repeat; medians count.
The last line reads: ratio <min over cases> overhead_us <max over cases>.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchlib import steady_seconds_per_step
from dlrecipe.builders import build_data, build_model, compose
from dlrecipe.models.optim import build_optimizer

CASES = {
    "digits CNN, batch 32": ["data=digits", "model=cnn", "data.batch_size=32"],
    "digits CNN, batch 256": ["data=digits", "model=cnn", "data.batch_size=256"],
    "CIFAR-sized CNN, batch 128": [
        "data=synthetic",
        "model=cnn",
        "data.samples=3000",
        "data.batch_size=128",
    ],
    "breast_cancer MLP, batch 32": ["experiment=breast_cancer_mlp", "data.batch_size=32"],
}
COMMON = [
    "callbacks.early_stopping=null",
    "report.enabled=false",
    "model/scheduler=none",
    "trainer.num_sanity_val_steps=0",
]


def raw_loop(overrides: list[str], epochs: int, device: str) -> float:
    """Seconds for `epochs` epochs of a hand-written loop; returns the training time per step."""
    cfg = compose(["paths.output_dir=/tmp/unused", *overrides])
    data = build_data(cfg)
    data.setup("fit")
    model = build_model(cfg, data.info).to(device)
    net = model.net
    optimizer = build_optimizer(model.optimizer_factory, net)  # the same groups and settings
    loss_fn, task = model.loss_fn, data.info.task
    x_all = data.prepare_inputs(data.data.inputs).to(device)  # normalized once, like a script would
    y_all = data.data.targets.to(device)
    train_idx = torch.as_tensor(data.fold.train, device=device)
    val_idx = torch.as_tensor(data.fold.val, device=device)
    batch = cfg.data.batch_size
    generator = torch.Generator().manual_seed(0)
    steps, start = 0, time.perf_counter()
    for epoch in range(epochs):
        if epoch == 1:  # steady state: from the second epoch on, like the template's StepTimer
            if device == "cuda":
                torch.cuda.synchronize()
            steps, start = 0, time.perf_counter()
        net.train()
        order = train_idx[torch.randperm(len(train_idx), generator=generator).to(device)]
        total = torch.zeros((), device=device)
        for i in range(0, len(order) // batch * batch, batch):
            idx = order[i : i + batch]
            out = net(x_all[idx])
            y = y_all[idx]
            loss = loss_fn(out, y) if task == "multiclass" else loss_fn(out.squeeze(-1), y.float())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
            steps += 1
        net.eval()
        with torch.no_grad():
            out = net(x_all[val_idx])
            float(total)  # one host sync per epoch, as the template logs once per epoch
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def template(overrides: list[str], epochs: int) -> float:
    return steady_seconds_per_step([f"trainer.max_epochs={epochs}", *overrides])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch threads for both sides; 1 keeps a CPU shared with other jobs from thrashing",
    )  # fmt: skip
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch threads: {torch.get_num_threads()}, repeats: {args.repeats}, epochs: {args.epochs}"
    )
    cases = dict(CASES)
    devices = {name: "cpu" for name in cases}
    if torch.cuda.is_available():
        cases["CIFAR-sized CNN, batch 128, GPU"] = [
            *CASES["CIFAR-sized CNN, batch 128"],
            "trainer=gpu",
        ]
        devices["CIFAR-sized CNN, batch 128, GPU"] = "cuda"
    print(f"{'case':34s} {'raw steps/s':>11s} {'dlrecipe':>9s} {'ratio':>6s} {'overhead us':>12s}")
    ratios, overheads = [], []
    for name, overrides in cases.items():
        device = devices[name]
        full = [*COMMON, *overrides] + ([] if device == "cuda" else ["trainer.accelerator=cpu"])
        raw_loop(full, 2, device)  # warm-up both sides
        template(full, 2)
        raw, ours = [], []
        for _ in range(args.repeats):  # alternate, so drifts in machine load hit both
            raw.append(raw_loop(full, args.epochs, device))
            ours.append(template(full, args.epochs))
        r, t = statistics.median(raw), statistics.median(ours)
        ratio, overhead = r / t, (t - r) * 1e6
        ratios.append(ratio)
        overheads.append(overhead)
        print(f"{name:34s} {1 / r:11.1f} {1 / t:9.1f} {ratio:6.3f} {overhead:12.0f}")
    print(f"ratio {min(ratios):.3f} overhead_us {max(overheads):.0f}")


if __name__ == "__main__":
    main()
