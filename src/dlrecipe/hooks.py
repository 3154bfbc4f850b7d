"""Run hooks: the optional steps of a run, named in config (`hooks:` in conf/train.yaml).

    python -m dlrecipe.train 'hooks=[]'   # the bare chain: no report, predictions, curves, W&B summary...

A hook is any object with some of the methods below (all optional); train.py calls each at its
point of the run, hook by hook in list order. Lightning callbacks stay the way to act inside
the fit; hooks act around it. docs/architecture.md lists which capability is which hook.

    configure(cfg) -> cfg | None     start-up, before any data: check (or return a changed) config
    after_data(ctx)                  the data is loaded: checks that need it, still before training
    run(ctx, fit) -> result | SKIP   take the run over (K-fold: fit per fold; the sanity suite)
    callbacks(ctx) -> list           Lightning callbacks to add to this fit's Trainer
    before_fit(ctx)                  the Trainer exists, fit is next
    after_fit(ctx) -> summary | None a summary ends this fit there (a pruned trial's other ranks)
    on_diverged(ctx, summary)        the loss diverged; summary.json says so (then exit 3)
    after_evaluate(ctx, summary)     the best checkpoint is evaluated (every rank): notes, refit...
    on_summary(ctx, summary)         rank 0, summary.json written: files, loggers, the report;
                                     summary.json is written again after these hooks
    teardown(ctx)                    always, when the fit ends (also after an error)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from dlrecipe.configs import conf_dir
from dlrecipe.errors import ConfigError

SKIP = object()  # run(): "not mine", the next hook (or the plain fit) runs
METHODS = ("configure", "after_data", "run", "callbacks", "before_fit", "after_fit",
           "on_diverged", "after_evaluate", "on_summary", "teardown")  # fmt: skip


@dataclass
class RunContext:
    """What a hook can see of one fit; the model and trainer exist from callbacks() on."""

    cfg: DictConfig
    datamodule: Any
    hooks: list[Any] = field(default_factory=list)
    run_dir: Path = Path(".")
    started: float = 0.0  # time.perf_counter() when this fit started: the summary's total_seconds
    resuming: bool = False  # resume=<run dir>: K-fold keeps the finished folds
    model: Any = None
    trainer: Any = None


def build_hooks(cfg: DictConfig) -> list[Any]:
    """The hooks the config names, in order; `hooks: null` or [] means none."""
    if "hooks" not in cfg:  # a run stored before hooks existed (resume=) keeps what it did then
        cfg = OmegaConf.load(conf_dir() / "train.yaml")
    entries = cfg.get("hooks") or []
    if not isinstance(entries, list | ListConfig):
        raise ConfigError(f"hooks must be a list of {{_target_: ...}} entries, got {entries!r}")
    hooks = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict | DictConfig) or "_target_" not in entry:
            raise ConfigError(f"hooks[{i}]={entry!r} needs a _target_ (a class with hook methods)")
        hook = instantiate(entry, _convert_="all")
        if not any(callable(getattr(hook, m, None)) for m in METHODS):
            raise ConfigError(f"hooks[{i}] ({entry['_target_']}) has none of {', '.join(METHODS)}")
        hooks.append(hook)
    return hooks


def call(hooks: list[Any], method: str, *args: Any) -> list[Any]:
    """Each hook's `method` (if it has one), in order; their return values."""
    return [getattr(h, method)(*args) for h in hooks if callable(getattr(h, method, None))]


def first(hooks: list[Any], method: str, *args: Any) -> Any:
    """The first hook's result that is not None (later hooks are not called), else None."""
    for hook in hooks:
        if callable(getattr(hook, method, None)):
            result = getattr(hook, method)(*args)
            if result is not None:
                return result
    return None


def run_instead(hooks: list[Any], ctx: RunContext, fit: Any) -> tuple[bool, Any]:
    """(True, result) of the first hook whose run() takes the run over, else (False, None).

    SKIP is compared here, not in train.py: a launcher that pickles `python -m dlrecipe.train`'s
    __main__ by value (submitit) would hand train.py a copy of SKIP that is not SKIP."""
    for hook in hooks:
        if callable(getattr(hook, "run", None)):
            result = hook.run(ctx, fit)
            if result is not SKIP:
                return True, result
    return False, None
