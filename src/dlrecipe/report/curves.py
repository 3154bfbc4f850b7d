"""Learning curves: training and validation loss, the main metric and the learning rate per epoch.

    python -c "from dlrecipe.report.curves import plot_learning_curves; help(plot_learning_curves)"

Reading them is the first diagnosis of any run: training loss that stays high is under-fitting;
validation loss that turns up while training loss falls is over-fitting (the summary names
that epoch).
"""

from __future__ import annotations

from pathlib import Path


def plot_learning_curves(rows: list[dict[str, float]], path: Path, main_metric: str) -> Path | None:
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers and in CI
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] + 1 for r in rows]
    panels = [("loss", "loss"), (main_metric, main_metric), ("lr", "learning rate")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, (key, label) in zip(axes, panels, strict=True):
        for stage, style in (("train", "-"), ("val", "--")):
            name = key if key == "lr" else f"{stage}/{key}"
            ys = [r.get(name, float("nan")) for r in rows]
            if any(y == y for y in ys):  # skip series that are all NaN
                ax.plot(
                    epochs,
                    ys,
                    style,
                    marker="o",
                    markersize=3,
                    label=stage if key != "lr" else None,
                )
            if key == "lr":
                break
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if key != "lr":
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def overfitting_epoch(rows: list[dict[str, float]], patience: int = 3) -> int | None:
    """First epoch after which validation loss rose for `patience` epochs while training loss fell."""
    val = [r.get("val/loss") for r in rows]
    train = [r.get("train/loss") for r in rows]
    if None in val or None in train or len(rows) <= patience:
        return None
    best = min(range(len(val)), key=val.__getitem__)
    later = range(best + 1, len(val))
    if len(later) >= patience and train[-1] < train[best] and val[-1] > val[best]:
        return int(rows[best]["epoch"]) + 1
    return None
