"""Evaluation figures: confusion matrix, ROC / precision-recall, calibration, regression fit.

    python -m dlrecipe.report outputs/train/<date>/<time>

Every function takes plain arrays (targets, predicted probabilities or values) and writes one
PNG; class names come from the data's DataInfo so axes read as the user's labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn import metrics as skm

from dlrecipe.report.layout import fixed_margins


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def confusion(y_true: np.ndarray, y_pred: np.ndarray, names: list[str], path: Path) -> Path:
    """One matrix: colour = share of the true class (comparable across class sizes), text = count."""
    plt = _pyplot()
    labels = list(range(len(names)))
    counts = skm.confusion_matrix(y_true, y_pred, labels=labels)
    rows = counts.sum(1, keepdims=True)
    normalized = np.divide(counts, rows, out=np.zeros_like(counts, dtype=float), where=rows > 0)
    size = max(4.0, 0.35 * len(names) + 1.5)
    fig, ax = plt.subplots(figsize=(size + 1.2, size), layout="constrained")
    shown = ax.imshow(normalized, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(shown, ax=ax, shrink=0.8, label="share of the true class")
    ax.set_title("confusion matrix (numbers: counts)")
    ax.set_xticks(labels, names, rotation=45, ha="right")
    ax.set_yticks(labels, names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(names) <= 20:
        for i, j in zip(*np.nonzero(counts), strict=True):  # zeros left blank: the eye finds errors
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if normalized[i, j] > 0.5 else "black")  # fmt: skip
    return _save(fig, path)


def per_class(y_true: np.ndarray, y_pred: np.ndarray, names: list[str]) -> list[dict]:
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(len(names))), zero_division=0
    )
    return [
        {"class": n, "precision": p, "recall": r, "f1": f, "support": int(s)}
        for n, p, r, f, s in zip(names, precision, recall, f1, support, strict=True)
    ]


def roc_pr(y_true: np.ndarray, probs: np.ndarray, names: list[str], path: Path) -> Path:
    """ROC and precision-recall curves; one-vs-rest per class for multiclass."""
    plt = _pyplot()
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(11, 4.5))
    curves = (
        [(names[1], y_true == 1, probs)]
        if probs.ndim == 1
        else [(n, y_true == c, probs[:, c]) for c, n in enumerate(names)]
    )
    for name, positive, score in curves:
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = skm.roc_curve(positive, score)
        precision, recall, _ = skm.precision_recall_curve(positive, score)
        roc_ax.plot(fpr, tpr, label=f"{name} (AUC {skm.auc(fpr, tpr):.3f})")
        pr_ax.plot(
            recall,
            precision,
            label=f"{name} (AP {skm.average_precision_score(positive, score):.3f})",
        )
    roc_ax.plot([0, 1], [0, 1], "k:", linewidth=1)
    roc_ax.set(title="ROC", xlabel="false positive rate", ylabel="true positive rate")
    pr_ax.set(title="precision-recall", xlabel="recall", ylabel="precision")
    for ax in (roc_ax, pr_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right" if ax is roc_ax else "lower left")
    fixed_margins(fig, (roc_ax, pr_ax))  # room from the tick labels, no layout engine
    return _save(fig, path)


def calibration(y_true: np.ndarray, probs: np.ndarray, path: Path, bins: int = 10, min_count: int = 20) -> Path:  # fmt: skip
    """Reliability diagram: predicted confidence against observed accuracy, per confidence bin.

    Bins hold equal numbers of samples (quantiles of the confidence), at least min_count each:
    equal-width bins on a confident model put one or two samples in the low bins, whose
    accuracy swings between 0 and 1 and reads as miscalibration.
    """
    plt = _pyplot()
    if probs.ndim == 1:  # binary: probability of the positive class vs its frequency
        confidence, correct = probs, (y_true == 1).astype(float)
        xlabel = "predicted probability of the positive class"
    else:  # multiclass: top-label confidence vs accuracy
        confidence, correct = probs.max(1), (probs.argmax(1) == y_true).astype(float)
        xlabel = "confidence of the predicted class"
    which = quantile_bins(confidence, bins, min_count)
    groups = [which == b for b in np.unique(which)]
    centers = [float(confidence[g].mean()) for g in groups]
    observed = [float(correct[g].mean()) for g in groups]
    counts = [int(g.sum()) for g in groups]
    ece = sum(c * abs(o - m) for c, o, m in zip(counts, observed, centers, strict=True)) / max(
        1, len(confidence)
    )
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot([0, 1], [0, 1], "k:", linewidth=1, label="perfect calibration")
    ax.plot(centers, observed, "o-", label=f"model (ECE {ece:.3f})")
    for x, y, n in zip(centers, observed, counts, strict=True):
        ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7, color="#555")  # fmt: skip
    low = min(0.5 if probs.ndim > 1 else 0.0, min(centers, default=0.0) - 0.05)
    ax.set(title=f"calibration\n{len(counts)} equal-count bins, samples per bin shown",
           xlabel=xlabel, ylabel="observed frequency", xlim=(max(0.0, low), 1), ylim=(0, 1.02))  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fixed_margins(fig, [ax], top=0.6, right=0.4)  # a two-line title; a count beside a point at 1.0
    return _save(fig, path)


def quantile_bins(values: np.ndarray, bins: int = 10, min_count: int = 20) -> np.ndarray:
    """Bin index per value: equal-count bins (at most `bins`, each of at least min_count
    values where there are that many); ties never split across bins."""
    n_bins = max(1, min(bins, len(values) // max(1, min_count)))
    edges = np.unique(np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1]))
    return np.searchsorted(edges, values, side="right")


def regression(y_true: np.ndarray, y_pred: np.ndarray, path: Path) -> Path:
    plt = _pyplot()
    fig, (fit_ax, res_ax) = plt.subplots(1, 2, figsize=(11, 4.5))
    low, high = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    fit_ax.scatter(y_true, y_pred, s=12, alpha=0.7)
    fit_ax.plot([low, high], [low, high], "k:", linewidth=1)
    fit_ax.set(title="predicted vs true", xlabel="true", ylabel="predicted")
    residuals = y_pred - y_true
    res_ax.scatter(y_pred, residuals, s=12, alpha=0.7)
    res_ax.axhline(0, color="k", linestyle=":", linewidth=1)
    res_ax.set(title="residuals", xlabel="predicted", ylabel="predicted - true")
    for ax in (fit_ax, res_ax):
        ax.grid(alpha=0.3)
    fixed_margins(fig, (fit_ax, res_ax))  # house prices need more room than 0.5: from the ticks
    return _save(fig, path)
