"""Resume a killed run in its own directory, with its own config.

    python -m dlrecipe.train resume=outputs/train/2026-11-25/11-41-01-410415
    python -m dlrecipe.train resume=<run dir> trainer.max_epochs=60     # and train longer

The run's config comes from its last.ckpt (saved there as plain containers); key=value
overrides given with resume= are applied on top. Training continues from the last completed
epoch (weights, optimizer, schedule, callbacks, history, random-number state); the CSV logger
appends, W&B resumes the same run id. A K-fold run keeps its finished folds (summary.json),
continues the killed fold from its last.ckpt and runs the rest. A finished run is left as it
is, unless trainer.max_epochs is raised. Hydra writes this invocation's own config to
.hydra_resume/, so the run's original .hydra/ is kept as it was.

A path that is not a run is refused before Hydra creates or writes anything there: the run
directory resolver (builders.py) calls `check_resume_path` first.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from dlrecipe.checkpoints import load_checkpoint
from dlrecipe.errors import ConfigError
from dlrecipe.models.module import CONFIG_KEY
from dlrecipe.trust import trusted_config

LAST = Path("checkpoints") / "last.ckpt"


@dataclass
class ResumePlan:
    run_dir: Path
    config: DictConfig  # the run's config with this invocation's overrides
    kfold: bool
    finished: str | None = None  # "nothing to do" in one line, when that is so
    optimized_value: Any = None  # a finished run's result, what train() returns to a sweep


def resume_config(cfg: DictConfig) -> DictConfig:
    return plan_resume(cfg).config


def plan_resume(cfg: DictConfig) -> ResumePlan:
    run_dir, last, kfold = find_run(cfg.resume)
    # dlrecipe.trust: only callables dlrecipe builds (or this command's trusted_targets), written
    # only into this run directory; refused if the config inside or the run's .hydra one is not
    paths = {"output_dir": str(run_dir.resolve()), "data_dir": cfg.paths.data_dir}
    checkpoint = load_checkpoint(last, key="resume", paths=paths)
    if CONFIG_KEY not in checkpoint:
        raise ConfigError(f"{last} holds no dlrecipe config; it was not written by dlrecipe.train")
    original = trusted_config(checkpoint[CONFIG_KEY], last, paths)
    original = _follow_output_dir(original)
    if kfold:
        original = unfold_config(original, run_dir, last)
    stored_epochs = OmegaConf.select(original, "trainer.max_epochs", default=None)
    for key, value in _command_line_values():
        if OmegaConf.select(original, key, default="__missing__") == "__missing__":
            raise ConfigError(f"resume: {key} is not a key of the run's config")
        OmegaConf.update(original, key, value, merge=False)
    with open_dict(original):
        original.paths.output_dir = str(run_dir.resolve())
        original.ckpt_path = None if kfold else str(last)
        original.resume = None
        wandb = (original.get("logger") or {}).get("wandb")
        run_id = _wandb_run_id(run_dir)
        if wandb and run_id and not kfold:
            wandb.id, wandb.resume = run_id, "allow"
    plan = ResumePlan(run_dir, original, kfold)
    requested = original.trainer.get("max_epochs")
    if run_finished(run_dir, kfold, requested):
        _say_finished(plan, stored_epochs)
    return plan


def unfold_config(fold_cfg: DictConfig, run_dir: Path, source: Path) -> DictConfig:
    """The K-fold run's config back from one of its folds' (cv/runner.py fold_config's inverse;
    here so that resume, which is core, needs nothing of cv/)."""
    index = OmegaConf.select(fold_cfg, "data.split.fold", default=None)
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ConfigError(
            f"resume: {source} is not a fold of a K-fold run (data.split.fold={index!r})"
        )
    cfg = copy.deepcopy(fold_cfg)
    with open_dict(cfg):
        cfg.data.split.fold = None
        cfg.seed = int(fold_cfg.seed) - 1000 * index
        cfg.paths.output_dir = str(run_dir)
    return cfg


def _follow_output_dir(config: DictConfig) -> DictConfig:
    """The stored config is resolved: checkpoint and logger directories name the directory the
    run had then. Put ${paths.output_dir} back in front of them, so that they follow the run
    (moved since, or a K-fold run's other folds) instead of writing into the old place."""
    old = OmegaConf.select(config, "paths.output_dir", default=None)
    if not isinstance(old, str) or not old:
        return config
    old = old.rstrip("/")

    def follow(value: Any, key: str) -> Any:
        if isinstance(value, dict):
            return {k: follow(v, f"{key}.{k}".lstrip(".")) for k, v in value.items()}
        if isinstance(value, list):
            return [follow(v, key) for v in value]
        under = isinstance(value, str) and (value == old or value.startswith(old + "/"))
        if under and key != "paths.output_dir":
            return "${paths.output_dir}" + value[len(old) :]
        return value

    return OmegaConf.create(follow(OmegaConf.to_container(config), ""))


def find_run(resume: Any) -> tuple[Path, Path, bool]:
    """(run directory, the last.ckpt whose config is the run's, K-fold?); refuses anything else."""
    text = str(resume)
    run_dir = Path(text).expanduser()
    hint = "give the directory of the run to continue, e.g. resume=outputs/train/<date>/<time>"
    if not run_dir.exists():
        raise ConfigError(f"resume={text!r} is not a directory: nothing is there; {hint}")
    if not run_dir.is_dir():
        if run_dir.name == "last.ckpt" and run_dir.parent.name == "checkpoints":
            hint = f"give its run directory, resume={run_dir.parent.parent}"
        raise ConfigError(f"resume={text!r} is not a directory but a file; {hint}")
    if (run_dir / LAST).is_file():
        return run_dir, run_dir / LAST, False
    folds = sorted(p.parent.parent for p in run_dir.glob(f"*/{LAST}") if p.is_file())
    if folds:  # a K-fold run: each fold has its own directory and checkpoints
        return run_dir, folds[0] / LAST, True
    raise ConfigError(
        f"resume={text!r} is not a dlrecipe run that can continue: it has no {LAST} (nor "
        f"<fold>/{LAST} of a K-fold run). A run killed before its first checkpoint has nothing "
        "to continue: start it again"
    )


def check_resume_path(resume: Any) -> None:
    """The run directory resolver's check: refuse in one line (exit 2) before Hydra writes anything."""
    try:
        _, last, _ = find_run(resume)
        if CONFIG_KEY not in _read_checkpoint(last):
            raise ConfigError(
                f"resume={str(resume)!r}: {last} holds no dlrecipe config; it was not written "
                "by dlrecipe.train"
            )
    except ConfigError as err:
        first = (str(err).splitlines() or [""])[0]  # torch's load errors run over lines
        sys.stderr.write(f"error: {first}\n")
        raise SystemExit(2) from None


def finished_without_changes(resume: Any, overrides: Any) -> bool:
    """True when resuming would only say "finished": Hydra then writes nothing into the run."""
    try:
        run_dir, last, kfold = find_run(resume)
        wanted = [str(o).split("=", 1)[1] for o in overrides or []
                  if str(o).startswith("trainer.max_epochs=")]  # fmt: skip
        if wanted:
            requested: Any = int(wanted[-1])
        else:
            requested = _stored_max_epochs(_read_checkpoint(last))
        return run_finished(run_dir, kfold, requested)
    except (ConfigError, ValueError, TypeError):
        return False  # the run itself names what is wrong


def run_finished(run_dir: Path, kfold: bool, requested_epochs: Any) -> bool:
    """Nothing left to do for a run asked to train `requested_epochs` epochs in all."""
    if not kfold:
        return fold_finished(run_dir, requested_epochs)
    if not (run_dir / "cv_summary.json").is_file():
        return False
    folds = [p.parent.parent for p in run_dir.glob(f"*/{LAST}") if p.is_file()]
    return all(fold_finished(fold, requested_epochs) for fold in folds)


def fold_finished(run_dir: Path, requested_epochs: Any) -> bool:
    """One fit (a run or a fold) is finished when its summary.json is newer than its last.ckpt's
    epoch, and it trained the requested epochs or ended sooner on its own (early stopping)."""
    summary = _read_json(run_dir / "summary.json")
    last = run_dir / LAST
    if summary is None or not last.is_file():
        return summary is not None  # no last.ckpt: nothing to continue from anyway
    checkpoint = _read_checkpoint(last)
    done, epoch = summary.get("epochs_run"), checkpoint.get("epoch")
    if not isinstance(done, int) or not isinstance(epoch, int) or done < epoch + 1:
        return False  # a stale summary: training went on after it was written
    stored = _stored_max_epochs(checkpoint)
    return _epochs(requested_epochs) <= max(float(done), _epochs(stored))


def _stored_max_epochs(checkpoint: dict[str, Any]) -> int | None:
    """trainer.max_epochs of the config inside a checkpoint, read as plain data (nothing in that
    config is resolved or built here: only an int counts)."""
    config = checkpoint.get(CONFIG_KEY)
    trainer = config.get("trainer") if isinstance(config, dict) else None
    value = trainer.get("max_epochs") if isinstance(trainer, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _say_finished(plan: ResumePlan, stored_epochs: Any) -> None:
    name = "cv_summary.json" if plan.kfold else "summary.json"
    summary = _read_json(plan.run_dir / name) or {}
    value = summary.get("optimized_value")
    plan.optimized_value = value if isinstance(value, int | float | list) else None
    if plan.kfold:
        done = f"all {len(summary.get('folds') or [])} folds and their aggregate"
    else:
        epochs = summary.get("epochs_run")
        epochs = epochs if isinstance(epochs, int) else "?"
        stopped = " (stopped early)" if epochs != stored_epochs else ""
        done = f"{epochs} of {stored_epochs} epochs{stopped}"
    plan.finished = (
        f"resume={plan.run_dir}: this run has finished ({done}, {name}); nothing changed. To "
        f"train longer: resume={plan.run_dir} trainer.max_epochs=<more than {stored_epochs}>"
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    """A summary written by an earlier run, or None; a damaged one is named, not guessed at."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"resume: {path} is unreadable ({err}); move it aside to let the run write it again"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"resume: {path} is not a dlrecipe summary; move it aside")
    return data


def _epochs(value: Any) -> float:
    """trainer.max_epochs as a number to compare: null and -1 mean no limit."""
    if value is None or value == -1:
        return math.inf
    try:
        return float(int(value))
    except (TypeError, ValueError):
        raise ConfigError(
            f"trainer.max_epochs={value!r} must be a whole number of epochs"
        ) from None


def _read_checkpoint(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return _cached_checkpoint(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)
def _cached_checkpoint(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    # The resolver and the run read the same file once (weights only: no pickled code); the
    # key includes mtime and size, so a checkpoint rewritten since is read again.
    checkpoint = load_checkpoint(path, key="resume")
    if not isinstance(checkpoint, dict):
        raise ConfigError(f"resume: {path} is not a dlrecipe checkpoint")
    return checkpoint


def _command_line_values() -> list[tuple[str, object]]:
    """key=value overrides given next to resume=; group choices cannot change a finished run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not HydraConfig.initialized():
        return []
    values = []
    for override in OverridesParser.create().parse_overrides(
        list(HydraConfig.get().overrides.task)
    ):
        key = override.key_or_group
        if key == "resume" or key.startswith("hydra."):
            continue
        if override.is_sweep_override() or "/" in key:
            raise ConfigError(
                f"resume keeps the run's config groups; only key=value overrides work (got {override.input_line})"
            )
        if "." not in key and key not in (
            "seed",
            "optimized_metric",
            "task_name",
            "trusted_targets",
        ):
            raise ConfigError(
                f"resume keeps the run's config groups ({key}=...); change keys inside them, e.g. trainer.max_epochs=60"
            )
        values.append((key, override.value()))
    return values


def _wandb_run_id(run_dir: Path) -> str | None:
    runs = sorted((run_dir / "wandb").glob("*run-*-*"))
    return runs[-1].name.rsplit("-", 1)[-1] if runs else None
