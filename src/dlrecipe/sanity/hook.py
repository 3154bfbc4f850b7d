"""The sanity suite's run hook: debug=sanity runs the suite instead of a fit (exit 1 on a failure).

python -m dlrecipe.train debug=sanity
"""

from __future__ import annotations

from typing import Any

from dlrecipe.console import status
from dlrecipe.hooks import SKIP
from dlrecipe.sanity import run_suite


class SanitySuite:
    def run(self, ctx: Any, fit: Any) -> Any:
        if not ctx.cfg.get("sanity"):
            return SKIP
        with status("running the sanity suite"):
            return run_suite(ctx.cfg, ctx.datamodule)
