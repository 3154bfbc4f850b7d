"""The linter's run hook: known config mistakes, at start-up before any data is loaded.

python -m dlrecipe.train extras.lint=false    # off
"""

from __future__ import annotations

from omegaconf import DictConfig

from dlrecipe.lint import run_lint


class Lint:
    def configure(self, cfg: DictConfig) -> None:
        run_lint(cfg)
