"""One check's outcome, and the suite's table and sanity.json.

    python -m dlrecipe.train experiment=digits_cnn debug=sanity   # prints the table, writes sanity.json

A check is `pass`, `warn` (worth a look, not a failure) or `fail`; a failing or warning check
carries a hint that says what usually causes it, so the table doubles as a debugging guide.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dlrecipe.console import show

STYLES = {"pass": "green", "warn": "yellow", "fail": "bold red"}


@dataclass
class Check:
    name: str
    status: str  # pass | warn | fail
    measured: str  # what the suite saw, as text for the table
    expected: str  # what a healthy setup gives
    hint: str = ""  # on warn / fail: what usually causes it and what to try
    values: dict[str, float | int | str | list] = field(default_factory=dict)  # for sanity.json

    @property
    def failed(self) -> bool:
        return self.status == "fail"


@dataclass
class SanityReport:
    task: str
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not any(c.failed for c in self.checks)

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    def write(self, path: Path) -> Path:
        payload = {
            "task": self.task,
            "passed": self.passed,
            "checks": [asdict(c) for c in self.checks],
        }
        path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
        return path

    def print(self, console: Console | None = None) -> None:
        console = console or Console()  # the terminal's width: the table wraps its cells to fit
        table = Table(title=f"dlrecipe sanity checks ({self.task})", show_lines=True)
        table.add_column("check", no_wrap=True)
        table.add_column("result", no_wrap=True)
        table.add_column("measured", overflow="fold")
        table.add_column("expected", overflow="fold")
        for check in self.checks:
            style = STYLES[check.status]
            table.add_row(
                check.name,
                f"[{style}]{check.status.upper()}[/{style}]",
                check.measured,
                check.expected,
            )
        show(table, console)  # also into train.log
        for check in self.checks:
            if check.hint and check.status != "pass":
                style = STYLES[check.status]
                console.print(f"[{style}]{check.name}:[/{style}] {check.hint}", highlight=False)
        failed = [c.name for c in self.checks if c.failed]
        verdict = (
            f"[bold red]{len(failed)} failed: {', '.join(failed)}"
            if failed
            else "[green]all checks passed"
        )
        console.print(verdict, highlight=False)
