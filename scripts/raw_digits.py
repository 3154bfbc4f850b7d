"""The default `make train` job as one plain PyTorch script: the yardstick for dlrecipe's cost.

    .venv/bin/python scripts/raw_digits.py [--epochs 30] [--seed 42]

What `python -m dlrecipe.train` does by default, written by hand: scikit-learn's digits (8x8,
pixels / 16), a stratified hold-out split (15 % test, then 15 % of all for validation), per-channel
standardization with training-split statistics only, the same CNN (two blocks of two 3x3 convs
with batch norm and ReLU, max pooling, global average pooling, a 128-unit head with dropout 0.3,
He-uniform init), AdamW (lr 3e-3, weight decay 0.01 on weights only), a per-step cosine schedule
to 1 % of the LR, batch 64 shuffled per epoch, early stopping after 10 epochs without a lower
validation loss, the best-validation weights kept in memory and tested once. It prints one JSON
line: test accuracy, epochs run, and (for scripts/bench_process.py) the wall clock just after
the first optimizer step, so start-up can be compared with dlrecipe's.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn


def cnn(num_classes: int) -> nn.Sequential:
    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.MaxPool2d(2),
        ]  # fmt: skip

    net = nn.Sequential(
        *block(1, 32), *block(32, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, num_classes),
    )  # fmt: skip
    for module in net.modules():  # He init for ReLU nets (dlrecipe's model.init=he_uniform)
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.kaiming_uniform_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return net


def evaluate(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean loss, accuracy) over a whole split, in eval mode, in batches of 512."""
    net.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(y), 512):
            out = net(x[i : i + 512])
            loss += float(nn.functional.cross_entropy(out, y[i : i + 512], reduction="sum"))
            correct += int((out.argmax(1) == y[i : i + 512]).sum())
    return loss / len(y), correct / len(y)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--patience", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    digits = load_digits()
    x = torch.as_tensor(digits.data, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    y = torch.as_tensor(digits.target)
    idx = list(range(len(y)))
    rest, test = train_test_split(idx, test_size=0.15, random_state=args.seed, stratify=y)
    share = 0.15 / (1 - len(test) / len(y))  # validation is 15 % of all samples
    train, val = train_test_split(rest, test_size=share, random_state=args.seed, stratify=y[rest])
    train, val, test = (torch.as_tensor(sorted(s)) for s in (train, val, test))
    mean, std = x[train].mean(), x[train].std()  # training split only: nothing leaks
    x = (x - mean) / (std + 1e-6)

    net = cnn(10)
    decay = [p for p in net.parameters() if p.ndim >= 2]
    no_decay = [p for p in net.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=3e-3,
    )
    batch = 64
    steps_per_epoch = math.ceil(len(train) / batch)
    total = args.epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    best_loss, best_state, waited, first_step, epochs = math.inf, None, 0, None, 0
    for _ in range(args.epochs):
        net.train()
        order = train[torch.randperm(len(train))]
        for i in range(0, len(order), batch):
            b = order[i : i + batch]
            loss = nn.functional.cross_entropy(net(x[b]), y[b])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if first_step is None:
                first_step = time.time()
        epochs += 1
        val_loss, _ = evaluate(net, x[val], y[val])
        if val_loss < best_loss:
            best_loss, best_state, waited = val_loss, copy.deepcopy(net.state_dict()), 0
        else:
            waited += 1
            if waited >= args.patience:
                break
    net.load_state_dict(best_state)
    test_loss, test_acc = evaluate(net, x[test], y[test])
    print(json.dumps({"test_acc": test_acc, "test_loss": test_loss, "epochs": epochs,
                      "first_step_at": first_step}))  # fmt: skip


if __name__ == "__main__":
    main()
