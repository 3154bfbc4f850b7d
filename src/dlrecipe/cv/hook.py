"""K-fold's run hook: with a K-fold split the run is one fit per fold, then the aggregate.

    python -m dlrecipe.train experiment=wine_mlp data/split=stratified_kfold

With a hold-out split it does nothing (the plain fit runs).
"""

from __future__ import annotations

from typing import Any

from dlrecipe.cv.runner import cross_validate, one_fold
from dlrecipe.errors import ConfigError
from dlrecipe.hooks import SKIP


class KFold:
    def after_data(self, ctx: Any) -> None:
        data = ctx.datamodule
        if len(data.folds) > 1 and data.split.fold is None and ctx.cfg.get("ckpt_path"):
            raise ConfigError(
                "ckpt_path continues one fit; with K-fold pick its fold (data.split.fold=i)"
            )

    def run(self, ctx: Any, fit: Any) -> Any:
        data = ctx.datamodule
        if len(data.folds) <= 1:
            return SKIP
        if data.split.fold is None:
            return cross_validate(ctx.cfg, data, fit, resuming=ctx.resuming)
        data, cfg = one_fold(ctx.cfg, data)  # one fold of K (a multirun job), seeded the same
        return fit(cfg, data).optimized_value
