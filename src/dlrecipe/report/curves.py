"""Learning curves: training and validation loss, the main metric and the learning rate per epoch.

    python -c "from dlrecipe.report.curves import plot_learning_curves; help(plot_learning_curves)"

Reading them is the first diagnosis of any run: training loss that stays high is under-fitting;
validation loss that turns up while training loss falls is over-fitting (the summary names
that epoch).
"""

from __future__ import annotations

from pathlib import Path

from dlrecipe.report.layout import fixed_margins


def plot_learning_curves(rows: list[dict[str, float]], path: Path, main_metric: str, best_epoch: int | None = None, stopped_early: bool = False) -> Path | None:  # fmt: skip
    """Loss (linear and log scale), the main metric and the learning rate per epoch (1-based),
    with the best epoch (the checkpoint kept) and an early stop marked on every panel."""
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers and in CI
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] + 1 for r in rows]
    panels = [("loss", "loss", "linear"), ("loss", "loss (log scale)", "log"),
              (main_metric, main_metric, "linear"), ("lr", "learning rate", "log")]  # fmt: skip
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    for ax, (key, label, scale) in zip(axes, panels, strict=True):
        for stage, style in (("train", "-"), ("val", "--")):
            name = key if key == "lr" else f"{stage}/{key}"
            ys = [r.get(name, float("nan")) for r in rows]
            if any(y == y for y in ys):  # skip series that are all NaN
                ax.plot(epochs, ys, style, marker="o", markersize=3,
                        label=stage if key != "lr" else "lr")  # fmt: skip
            if key == "lr":
                break
        if scale == "log" and all(y > 0 for line in ax.get_lines() for y in line.get_ydata() if y == y):  # fmt: skip
            ax.set_yscale("log")  # a log axis needs positive values (an R2 or lr of 0 would not)
        if best_epoch is not None:
            ax.axvline(
                best_epoch, color="tab:green", linestyle=":", label=f"best epoch {best_epoch}"
            )
        if stopped_early:
            ax.axvline(epochs[-1], color="tab:red", linestyle="-.", linewidth=1,
                       label=f"stopped early (epoch {epochs[-1]})")  # fmt: skip
        ax.set(title=label, xlabel="epoch", ylabel=label.replace(" (log scale)", ""))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fixed_margins(fig, axes)  # not a layout engine: ~40 % of the figure's time (layout.py)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def stopped_early(epochs_run: int, max_epochs: int | None) -> bool:
    """Whether the fit ended before max_epochs (early stopping, or max_steps / max_time).

    Read from the epoch count, not from the EarlyStopping callback: testing the best
    checkpoint restores the callback's state as of that epoch, which had not stopped yet."""
    return max_epochs is not None and max_epochs > 0 and 0 < epochs_run < max_epochs


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
