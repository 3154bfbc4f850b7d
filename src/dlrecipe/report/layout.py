"""Margins for the report's figures, set from their tick labels' text, not by a layout engine.

    python -m dlrecipe.report outputs/train/<date>/<time>

Matplotlib's constrained layout measures every tick label and title on every draw: about 40 %
of drawing a learning-curve or ROC figure. The report's axes hold numbers in fixed font sizes,
so the room they need follows from the tick labels' characters (read from the axis formatter,
nothing drawn): wide labels such as house prices (-49800) get a wider margin, short ones do
not waste space. tests/test_report_parts.py checks that nothing reaches a figure's edge.
Figures whose tick labels are the user's words (class names on a confusion matrix) keep
constrained layout.
"""

from __future__ import annotations

import re
from typing import Any

CHAR = 0.09  # inches per character of a 10 pt tick label (DejaVu Sans digits are ~0.088 in)
LABEL = 0.45  # an axis label beside its tick labels, with the ticks and padding
BOTTOM, TOP, EDGE = 0.55, 0.35, 0.2  # x tick labels + x label; a one-line title; a bare edge


def fixed_margins(fig: Any, axes: Any, *, top: float = TOP, right: float = EDGE) -> None:
    """Place a row of subplots (`axes`, left to right) with room for each one's y tick labels
    and label on its left, and for the last x tick label's overhang on the right."""
    axes = list(getattr(axes, "flat", axes))
    width, height = fig.get_size_inches()
    lefts = [_left_room(ax) for ax in axes]
    right = max(right, _overhang(axes[-1]) + 0.05)
    between = max(lefts[1:], default=0.0) + EDGE
    panel = (width - lefts[0] - right - between * (len(axes) - 1)) / len(axes)
    fig.subplots_adjust(left=lefts[0] / width, right=1 - right / width, bottom=BOTTOM / height,
                        top=1 - top / height, wspace=between / panel)  # fmt: skip


def inches(fig: Any, left: float, bottom: float, width: float, height: float) -> tuple[float, ...]:
    """A rectangle given in inches from the figure's lower left, as fig.add_axes fractions."""
    w, h = fig.get_size_inches()
    return (left / w, bottom / h, width / w, height / h)


def _visible(label: str) -> str:
    """The characters a tick label shows: mathtext $\\mathdefault{2\\times10^{-3}}$ -> 2x10-3."""
    return re.sub(r"\\mathdefault|[${}^\\]", "", label.replace("\\times", "x"))


def _tick_labels(axis: Any, minor: bool = False) -> list[str]:
    """What the axis will write at its ticks (a log axis spanning under a decade labels minor
    ticks too: 2x10^-3)."""
    if minor:
        return axis.get_minor_formatter().format_ticks(axis.get_minorticklocs())
    return axis.get_major_formatter().format_ticks(axis.get_majorticklocs())


def _left_room(ax: Any) -> float:
    labels = _tick_labels(ax.yaxis) + _tick_labels(ax.yaxis, minor=True)
    widest = max((len(_visible(t)) for t in labels), default=0)
    return CHAR * widest + LABEL


def _overhang(ax: Any) -> float:
    """How far the last x tick label reaches past the axes' right edge (centred on its tick)."""
    labels = _tick_labels(ax.xaxis)
    return CHAR * len(_visible(labels[-1])) / 2 if labels else 0.0
