"""dlrecipe vs a hand-written PyTorch loop: steps/s, their ratio and the fixed overhead per step.

    make bench          # or: .venv/bin/python scripts/bench_throughput.py [--repeats 3] [--threads 1]

For each case both sides train the same net (built by dlrecipe's own nets, same initial
weights), on the same normalized data in the same order, with the same optimizer, batch size
and epochs, and both validate once per epoch. Both are timed in steady state, from the second
epoch to the end (fit set-up and the first epoch's allocations left out). The raw loop is what a careful hand-written
script does: tensors in memory, batches by index, loss and accuracy summed on the device and
read once per epoch. dlrecipe runs its default callbacks (checkpoints, early stopping, LR
monitor, progress bar, history) and the CSV logger. Runs alternate and repeat; medians count.
A third side, the least a Lightning script runs (see lightning_loop), shows what of the overhead
is Lightning's own loop. The last line reads

    ratio <min raw/dlrecipe> overhead_us <max over raw> vs_lightning <min dlrecipe/bare
    Lightning, in steps/s> own_us <max of dlrecipe's own microseconds per step over Lightning's>

On a machine shared with other jobs, --clock cpu times this process's CPU time instead of wall
time: steadier, and still the same work on every side.

With a GPU a fifth case runs: the CIFAR-sized CNN on the GPU with bf16-mixed precision and
channels_last on every side (autocast in the raw loop, the Trainer's precision on the bare
Lightning side, the same overrides for dlrecipe; the net is dlrecipe's own, channels_last
included). --gpu-case-on-cpu runs that case's options on the CPU, to check them without a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
from typing import Any

import torch

import benchlib
from benchlib import StepTimer, steady_seconds_per_step
from dlrecipe.builders import build_data, build_model, compose
from dlrecipe.models.optim import build_optimizer

CASES = {
    "digits CNN, batch 32": ["data=digits", "model=cnn", "data.batch_size=32"],
    "digits CNN, batch 256": ["data=digits", "model=cnn", "data.batch_size=256"],
    "CIFAR-sized CNN, batch 128": [
        "data=synthetic",
        "model=cnn",
        "data.source.samples=3000",
        "data.batch_size=128",
    ],
    "breast_cancer MLP, batch 32": ["experiment=breast_cancer_mlp", "data.batch_size=32"],
}
GPU_CASE = "CIFAR-sized bf16 NHWC"  # case 5: the CIFAR-sized case with GPU_OPTIONS
GPU_OPTIONS = ["trainer.precision=bf16-mixed", "model.channels_last=true"]
COMMON = [
    "callbacks.early_stopping=null",
    "report.enabled=false",
    "model/scheduler=none",
    "trainer.num_sanity_val_steps=0",
]


class _Workload:
    """What every side trains: dlrecipe's own net (same initial weights), optimizer and data."""

    def __init__(self, overrides: list[str], device: str):
        cfg = compose(["paths.output_dir=/tmp/unused", *overrides])
        data = build_data(cfg)
        data.setup("fit")
        model = build_model(cfg, data.info).to(device)
        self.net = model.net
        self.optimizer = build_optimizer(model.optimizer_factory, self.net)  # same groups
        self.loss_fn, self.task, self.device = model.loss_fn, data.info.task, device
        self.x = data.prepare_inputs(data.data.inputs).to(device)  # normalized once, like a script
        self.y = data.data.targets.to(device)
        self.train_idx = torch.as_tensor(data.fold.train, device=device)
        self.val_idx = torch.as_tensor(data.fold.val, device=device)
        self.batch = cfg.data.batch_size
        self.generator = torch.Generator().manual_seed(0)
        # The Trainer's precision and cudnn.benchmark, so that every side runs the same options
        # (model.channels_last is in the net itself: a forward pre-hook converts the inputs).
        self.precision = str(cfg.trainer.get("precision", "32-true"))
        if self.precision not in ("32-true", "32", "bf16-mixed"):
            raise SystemExit(f"bench_throughput: the raw loop runs 32-true or bf16-mixed, not {self.precision}")  # fmt: skip
        self.benchmark = bool(cfg.trainer.get("benchmark") or False)

    def mixed(self) -> contextlib.AbstractContextManager:
        """The raw loop's autocast: what trainer.precision=bf16-mixed does in Lightning."""
        if self.precision == "bf16-mixed":
            return torch.autocast(self.device, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if self.task == "multiclass":
            return self.loss_fn(out, y)
        return self.loss_fn(out.squeeze(-1), y.float())

    def epoch_batches(self):
        order = self.train_idx[
            torch.randperm(len(self.train_idx), generator=self.generator).to(self.device)
        ]
        for i in range(0, len(order) // self.batch * self.batch, self.batch):
            idx = order[i : i + self.batch]
            yield self.x[idx], self.y[idx]


def raw_loop(overrides: list[str], epochs: int, device: str) -> float:
    """A hand-written loop for `epochs` epochs; returns the steady-state seconds per step."""
    work = _Workload(overrides, device)
    net, optimizer = work.net, work.optimizer
    torch.backends.cudnn.benchmark = work.benchmark
    steps, start = 0, benchlib.clock()
    for epoch in range(epochs):
        if epoch == 1:  # steady state: from the second epoch on, like the template's StepTimer
            if device == "cuda":
                torch.cuda.synchronize()
            steps, start = 0, benchlib.clock()
        net.train()
        total = torch.zeros((), device=device)
        for x, y in work.epoch_batches():
            with work.mixed():
                loss = work.loss(x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
            steps += 1
        net.eval()
        with torch.no_grad(), work.mixed():
            work.loss(work.x[work.val_idx], work.y[work.val_idx])
            float(total)  # one host sync per epoch, as the template logs once per epoch
    if device == "cuda":
        torch.cuda.synchronize()
    return (benchlib.clock() - start) / steps


def lightning_loop(
    overrides: list[str],
    epochs: int,
    device: str,
    idle_callbacks: int = 0,
    logged: int = 1,
    profiler: Any = None,
) -> float:
    """The least a Lightning script runs, on the raw loop's batches: training_step returns the
    loss, validation logs the loss once per epoch; no logger, checkpoints or other callbacks.
    What Lightning's loop itself costs per step, which no template on top of it can undercut.
    `idle_callbacks` adds callbacks that do nothing: what Lightning's dispatch of every hook to
    every callback costs by itself, and `logged` > 1 logs that many values an epoch instead of
    one: what each `self.log` key costs, and `profiler` times its hooks (scripts/bench_epoch_cost.py)."""
    import lightning.pytorch as pl

    work = _Workload(overrides, device)

    class Minimal(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = work.net

        def training_step(self, batch, batch_idx):
            return work.loss(*batch)

        def validation_step(self, batch, batch_idx):
            loss = work.loss(*batch)
            for i in range(logged):
                self.log(f"val/loss{i or ''}", loss)

        def configure_optimizers(self):
            return work.optimizer

    class Batches:  # the raw loop's order, drawn from the same generator
        def __iter__(self):
            return work.epoch_batches()

        def __len__(self):
            return len(work.train_idx) // work.batch

    class Once:
        def __iter__(self):
            yield work.x[work.val_idx], work.y[work.val_idx]

        def __len__(self):
            return 1

    trainer = pl.Trainer(
        max_epochs=epochs, accelerator="gpu" if device == "cuda" else "cpu", devices=1,
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, precision=work.precision,
        benchmark=work.benchmark, callbacks=[StepTimer(), *(pl.Callback() for _ in range(idle_callbacks))],
        profiler=profiler,
    )  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.fit(Minimal(), train_dataloaders=Batches(), val_dataloaders=Once())
    return StepTimer.last["seconds"] / StepTimer.last["steps"]


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
    parser.add_argument(
        "--clock", choices=sorted(benchlib.CLOCKS), default="wall",
        help="wall time, or CPU time (steadier on a loaded machine)",
    )  # fmt: skip
    parser.add_argument("--cases", default=None, help="comma-separated case numbers, e.g. 1,4")
    parser.add_argument(
        "--gpu-case-on-cpu", action="store_true",
        help="run case 5 (bf16-mixed, channels_last) on the CPU: checks its options without a GPU",
    )  # fmt: skip
    args = parser.parse_args()
    benchlib.set_clock(args.clock)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch threads: {torch.get_num_threads()}, repeats: {args.repeats}, epochs: {args.epochs}, "
        f"clock: {args.clock}"
    )
    cases = dict(CASES)
    devices = {name: "cpu" for name in cases}
    if torch.cuda.is_available() or args.gpu_case_on_cpu:
        device = "cpu" if args.gpu_case_on_cpu else "cuda"
        name = f"{GPU_CASE}, {'GPU' if device == 'cuda' else 'CPU'}"
        cases[name] = [*CASES["CIFAR-sized CNN, batch 128"], *GPU_OPTIONS]
        cases[name] += ["trainer=gpu"] if device == "cuda" else []
        devices[name] = device
    if args.cases:  # a subset, for a quick look; the full table is the default
        chosen = {int(i) - 1 for i in args.cases.split(",")}
        if not chosen <= set(range(len(cases))):
            parser.error(
                f"--cases: choose from 1-{len(cases)} (5 needs a GPU or --gpu-case-on-cpu)"
            )
        cases = {name: c for i, (name, c) in enumerate(cases.items()) if i in chosen}
    print(
        f"{'case':30s} {'raw':>7s} {'Lightning':>9s} {'dlrecipe':>8s} {'ratio':>6s} "
        f"{'overhead us':>11s} {'vs Lightning':>12s} {'own us':>7s}"
    )
    ratios, overheads, vs_lightning, own = [], [], [], []
    for name, overrides in cases.items():
        device = devices[name]
        # The device's accelerator, always: benchlib.QUIET pins the CPU, and a key override
        # outranks the trainer=gpu group's value whatever their order.
        full = [*COMMON, *overrides, f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}"]
        raw_loop(full, 2, device)  # warm-up every side
        lightning_loop(full, 2, device)
        template(full, 2)
        raw, light, ours = [], [], []
        for _ in range(args.repeats):  # alternate, so drifts in machine load hit every side
            raw.append(raw_loop(full, args.epochs, device))
            light.append(lightning_loop(full, args.epochs, device))
            ours.append(template(full, args.epochs))
        r, lit, t = statistics.median(raw), statistics.median(light), statistics.median(ours)
        ratio, overhead = r / t, (t - r) * 1e6
        ratios.append(ratio)
        overheads.append(overhead)
        vs_lightning.append(lit / t)  # dlrecipe's steps/s over bare Lightning's
        own.append((t - lit) * 1e6)
        print(
            f"{name:30s} {1 / r:7.1f} {1 / lit:9.1f} {1 / t:8.1f} {ratio:6.3f} {overhead:11.0f} "
            f"{lit / t:12.3f} {own[-1]:7.0f}"
        )
    print(
        "(steps/s; ratio = dlrecipe/raw steps/s; overhead = us per step over raw; vs Lightning ="
        " dlrecipe/bare Lightning steps/s; own us = us per step over bare Lightning)"
    )
    print(
        f"ratio {min(ratios):.3f} overhead_us {max(overheads):.0f} "
        f"vs_lightning {min(vs_lightning):.3f} own_us {max(own):.0f}"
    )


if __name__ == "__main__":
    main()
