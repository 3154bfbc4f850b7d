"""What dlrecipe prints: progress lines, status lines and tables, also written to the run's log.

    COLUMNS=80 python -m dlrecipe.train experiment=wine_mlp data/split=stratified_kfold data.split.k=2

Hydra's job logging writes `<run dir>/train.log` through file handlers on the root logger, but
dlrecipe prints its summaries with rich. Everything printed here goes to the console as usual
and, as plain text, to those file handlers only (not to the console handler: no double lines),
so train.log holds the progress lines and the summaries. Paths are printed whole (soft wrap:
the terminal folds a long line, rich never cuts or breaks it), so they can be copied.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

log = logging.getLogger("dlrecipe")


def to_log_file(text: str) -> None:
    """`text` into every log file the root logger writes (Hydra's train.log), never the console."""
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    lines = [line.rstrip() for line in text.rstrip("\n").splitlines()]
    # A table starts on its own line after the log prefix, so its columns stay aligned.
    message = "\n".join(["", *lines] if len(lines) > 1 else lines)
    record = log.makeRecord(log.name, logging.INFO, __file__, 0, message, None, None)
    for handler in handlers:
        if record.levelno >= handler.level:
            handler.handle(record)


def plain(renderable: Any, width: int = 80) -> str:
    """A rich renderable as the text it shows, without colours (for the log file)."""
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, highlight=False).print(renderable)
    return buffer.getvalue()


def show(renderable: Any, console: Console | None = None) -> None:
    """A table or grid on the console, and the same text in the log file."""
    console = console or Console()
    console.print(renderable)
    to_log_file(plain(renderable, console.width))


def say(text: str, console: Console | None = None) -> None:
    """One line, never wrapped or cut by rich (paths stay copyable), also in the log file."""
    console = console or Console()
    console.print(text, soft_wrap=True, highlight=False, markup=False)
    to_log_file(text)


def clock(seconds: float) -> str:
    """0:01:05 -- seconds as a clock, the way a practitioner reads elapsed time."""
    seconds = max(0, round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Countdown:
    """Prints "fold 2/5 - elapsed 0:00:12, about 0:00:36 left" before each of `total` pieces.

    The estimate is the mean time of the pieces finished in this process times those left;
    `number` is the 1-based number of the piece about to start (a sweep's trials may start at
    17 when other workers or an earlier run filled the study); the same number twice in a row
    is a piece run again (a sweep's failed trial does not use up its place in the budget).
    """

    def __init__(self, what: str, total: int):
        self.what, self.total = what, int(total)
        self.started = time.perf_counter()
        self.first: int | None = None
        self.previous: int | None = None

    def line(self, number: int) -> str:
        self.first = number if self.first is None else self.first
        again = " again" if number == self.previous else ""
        self.previous = number
        elapsed = time.perf_counter() - self.started
        finished = number - self.first
        head = f"{self.what} {number}/{self.total}{again}"
        if finished <= 0:
            return f"{head} - time left known after the first {self.what}"
        left = elapsed / finished * max(0, self.total - number + 1)
        return f"{head} - elapsed {clock(elapsed)}, about {clock(left)} left"

    def start(self, number: int, console: Console | None = None) -> None:
        say(self.line(number), console)


@contextmanager
def status(what: str, console: Console | None = None) -> Iterator[dict[str, float]]:
    """Says "building the report..." before slow silent work and its time after; yields a dict
    whose "seconds" is filled in at the end (the summary reports it)."""
    timing = {"seconds": 0.0}
    say(f"{what}...", console)
    started = time.perf_counter()
    try:
        yield timing
    finally:
        timing["seconds"] = time.perf_counter() - started
        say(f"{what}: {timing['seconds']:.1f} s", console)
