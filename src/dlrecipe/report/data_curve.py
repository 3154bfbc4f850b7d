"""The data curve's arithmetic and figure: the doubling estimate, its uncertainty, the verdict.

    python -c "from dlrecipe.report.data_curve import extrapolate; help(extrapolate)"

The estimate is a power law err(n) = a * n^-b (a straight line of log error against log
training-set size) fitted to every run of the largest few sizes, and its curved counterpart (a
parabola in log-log: the slope keeps flattening as it did, down to no gain): the estimate is
their midpoint, and the interval spans both, each widened by the ordinary least-squares
prediction interval for the mean of `seeds` new runs at the target size (Student t on the
residual scatter, which holds both the seed-to-seed spread and how far the sizes' means stray
from the line). Learning curves usually bend towards a floor, so the straight line alone is
optimistic; the two together bracket "the slope holds" and "the bend continues". Only the largest sizes are used because the slope flattens
as the error nears its floor; the slope of the top of the curve is the one that says what more
data buys now. `extrapolate` takes any subset of the runs, so the estimate made from the runs up
to half the data can be checked against the full-size runs (tests/test_data_curve.py does).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Extrapolation:
    size: int  # the training-set size the estimate is for
    score: float  # the expected mean validation score of `seeds` runs at that size
    low: float  # ... and its prediction interval at `level`
    high: float
    slope: float  # b in err ~ n^-b over `sizes`: 0 = flat, 0.5 = error falls by 29 % per doubling
    slope_low: float
    slope_high: float
    sizes: tuple[int, ...]  # the training-set sizes the line was fitted to
    runs: int  # the runs (points) behind the fit
    seeds: int  # the interval is for the mean of this many new runs
    level: float
    dof: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def to_error(score: np.ndarray, higher_is_better: bool) -> np.ndarray:
    return 1.0 - score if higher_is_better else score


def from_error(err: float, higher_is_better: bool) -> float:
    return 1.0 - err if higher_is_better else err


def extrapolate(
    sizes: np.ndarray, scores: np.ndarray, target_size: int, higher_is_better: bool,
    seeds: int | None = None, last: int = 3, floor: float = 1e-6, level: float = 0.95,
) -> Extrapolation | None:  # fmt: skip
    """The validation score expected at `target_size`, from runs (one size and score each).

    Fits log(err) = log(a) - b log(n) to every run at the largest `last` distinct sizes;
    `floor` keeps a perfect score (err = 0) finite (half a validation sample is a fair floor).
    None when the fit has no residual degrees of freedom (fewer than 3 runs at those sizes).
    """
    from scipy import stats

    sizes, scores = np.asarray(sizes, dtype=float), np.asarray(scores, dtype=float)
    used = np.unique(sizes)[-last:]
    mask = np.isin(sizes, used)
    x = np.log(sizes[mask])
    y = np.log(np.maximum(to_error(scores[mask], higher_is_better), floor))
    n, dof = len(x), len(x) - 2
    if len(used) < 2 or dof < 1:
        return None
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (intercept + slope * x)
    s2 = float(residual @ residual) / dof
    sxx = float(((x - x.mean()) ** 2).sum())
    x0 = math.log(target_size)
    m = seeds or int(mask[sizes == used[-1]].sum())  # a mean over as many runs as the top size
    spread = math.sqrt(s2 * (1.0 / n + (x0 - x.mean()) ** 2 / sxx + 1.0 / m))
    t = float(stats.t.ppf(0.5 + level / 2, dof))
    line = intercept + slope * x0
    bent = _bent(x, y, x0) if len(used) >= 3 else line
    low_y, high_y = min(line, bent) - t * spread, max(line, bent) + t * spread
    errs = [math.exp(v) for v in ((line + bent) / 2, low_y, high_y)]
    ends = sorted(from_error(e, higher_is_better) for e in errs[1:])
    slope_spread = t * math.sqrt(s2 / sxx)
    return Extrapolation(
        size=int(target_size), score=from_error(errs[0], higher_is_better), low=ends[0],
        high=ends[1], slope=-slope, slope_low=-slope - slope_spread,
        slope_high=-slope + slope_spread, sizes=tuple(int(s) for s in used), runs=n, seeds=m,
        level=level, dof=dof,
    )  # fmt: skip


def _bent(x: np.ndarray, y: np.ndarray, x0: float) -> float:
    """log err at x0 if the curve keeps bending as it did (a parabola in log-log whose slope
    may flatten to 0 but never turn up): the curved counterpart of the straight line."""
    curve = np.polyfit(x, y, 2)
    top = float(x.max())
    slopes = [min(0.0, float(np.polyval(np.polyder(curve), v))) for v in (top, x0)]
    return float(np.polyval(curve, top)) + (slopes[0] + slopes[1]) / 2 * (x0 - top)


def size_means(rows: list[dict[str, Any]], key: str) -> list[tuple[int, float, float, int]]:
    """(training-set size, mean, sample standard deviation, runs) of `key`, by size."""
    out = []
    for size in sorted({int(r["train_size"]) for r in rows}):
        values = np.array([r[key] for r in rows if int(r["train_size"]) == size], dtype=float)
        values = values[np.isfinite(values)]
        if len(values):
            sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            out.append((size, float(values.mean()), sd, len(values)))
    return out


def verdict(rows: list[dict[str, Any]], metric: str, higher: bool, estimate: Extrapolation | None) -> list[str]:  # fmt: skip
    """Plain words: is the validation score still rising at full size, what would doubling give."""
    val = size_means(rows, "val_score")
    name = f"validation {metric}"
    (n_top, top, _, _runs) = val[-1]
    lines = []
    if len(val) >= 2:
        n_prev, prev = val[-2][0], val[-2][1]
        step = f"{prev:.4f} at {n_prev} -> {top:.4f} at {n_top} training samples"
    else:
        step = f"{top:.4f} at {n_top} training samples"
    if estimate is None:
        lines.append(
            f"the {name} went {step}; with fewer than 3 runs at the largest sizes there is no "
            "estimate of the slope or its uncertainty: use data_curve.seeds=2 or more"
        )
        return lines
    pct = round(100 * estimate.level)
    better = "rising" if higher else "falling"
    slope = f"error ~ n^-{estimate.slope:.2f} ({pct} % interval {estimate.slope_low:.2f} .. {estimate.slope_high:.2f})"
    if estimate.slope_low > 0:
        lines.append(
            f"the {name} is still {better} at full size: {step}; over the largest {len(estimate.sizes)} sizes the {slope}"
        )
    elif estimate.slope_high < 0:
        lines.append(
            f"the {name} gets worse with more data ({step}; {slope}): look for a problem in the larger subsets' training, not for more data"
        )
    else:
        lines.append(
            f"the {name} is not clearly rising any more at full size: {step}; {slope}, an "
            "interval that includes 0 (no gain), so the rise is within the seed-to-seed noise: "
            "more data may help little; more seeds (data_curve.seeds) would tell"
        )
    gain = estimate.score - top
    lines.append(
        f"doubling the training data ({n_top} -> {estimate.size} samples) would give a {name} of "
        f"about {estimate.score:.4f} ({pct} % prediction interval {estimate.low:.4f} .. "
        f"{estimate.high:.4f}), {gain:+.4f} against the {top:.4f} measured at {n_top}"
    )
    err = "1 - " + metric if higher else metric
    lines.append(
        f"how: log({err}) against log(training-set size) through the {estimate.runs} runs at sizes "
        f"{', '.join(map(str, estimate.sizes))}, once as a straight line (a power law err = a n^-b: "
        "the slope holds) and once as a parabola (the curve keeps bending towards a floor, as "
        "learning curves do); the estimate is their midpoint and the interval spans both, each "
        f"widened by the straight fit's prediction interval for the mean of {estimate.seeds} new "
        f"runs (Student t, {estimate.dof} degrees of freedom), which carries the seed-to-seed "
        "spread and the scatter of the sizes about the line"
    )
    train = dict((s, m) for s, m, _, _ in size_means(rows, "train_score"))
    if n_top in train and math.isfinite(train[n_top]):
        gap = train[n_top] - top if higher else top - train[n_top]
        lines.append(
            f"at full size the model scores {train[n_top]:.4f} on its own training data and "
            f"{top:.4f} on validation (gap {gap:.4f}): "
            + ("a wide gap is variance, which more data or regularization narrows"
               if gap > 0.02 * max(abs(top), 1e-9) + 1e-9 else
               "train and validation agree, so the model is not over-fitting; if both are poor, "
               "a bigger model or longer training helps more than more data")
        )  # fmt: skip
    return lines


def plot(rows: list[dict[str, Any]], metric: str, path: Path, estimate: Extrapolation | None) -> Path:  # fmt: skip
    """Train and validation score against training-set size, mean and spread over seeds."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers and in CI
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for key, label, colour in (("train_score", "train", "tab:blue"), ("val_score", "validation", "tab:orange")):  # fmt: skip
        stats = size_means(rows, key)
        if not stats:
            continue
        n, mean, sd, _ = (np.array(v) for v in zip(*stats, strict=True))
        ax.errorbar(n, mean, yerr=sd, color=colour, marker="o", capsize=3, label=f"{label} (mean ± sd)")  # fmt: skip
        ax.fill_between(n, mean - sd, mean + sd, color=colour, alpha=0.15)
    if estimate is not None:
        below, above = estimate.score - estimate.low, estimate.high - estimate.score
        ax.errorbar([estimate.size], [estimate.score], yerr=[[abs(below)], [abs(above)]],
                    color="tab:orange", marker="o", mfc="white", linestyle="none", capsize=4,
                    label=f"doubling estimate ({round(100 * estimate.level)} % interval)")  # fmt: skip
        top = size_means(rows, "val_score")[-1]
        ax.plot([top[0], estimate.size], [top[1], estimate.score], ":", color="tab:orange")
    ax.set_xscale("log")
    ticks = sorted({int(r["train_size"]) for r in rows} | ({estimate.size} if estimate else set()))
    ax.set_xticks(ticks, [str(t) for t in ticks])  # the sizes themselves, not powers of ten
    ax.minorticks_off()
    ax.set_xlabel("training-set size (samples, log scale)")
    ax.set_ylabel(metric)
    ax.set_title("data curve: does more data help?")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
