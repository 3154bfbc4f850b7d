"""Resume a killed run in its own directory, with its own config.

    python -m dlrecipe.train resume=outputs/train/2026-11-25/11-41-01-410415
    python -m dlrecipe.train resume=<run dir> trainer.max_epochs=60     # and train longer

The run's config comes from its last.ckpt (saved there as plain containers); key=value
overrides given with resume= are applied on top. Training continues from the last completed
epoch (weights, optimizer, schedule, callbacks, history); the CSV logger appends, W&B resumes
the same run id. Hydra writes this invocation's own config to .hydra_resume/, so the run's
original .hydra/ is kept as it was.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from dlrecipe.checkpoints import load_checkpoint
from dlrecipe.errors import ConfigError
from dlrecipe.models.module import CONFIG_KEY
from dlrecipe.trust import trusted_config


def resume_config(cfg: DictConfig) -> DictConfig:
    run_dir = Path(cfg.resume).expanduser()
    last = run_dir / "checkpoints" / "last.ckpt"
    if not run_dir.is_dir():
        raise ConfigError(
            f"resume={cfg.resume!r} is not a directory; give the run directory of the run to continue"
        )
    if not last.exists():
        raise ConfigError(
            f"resume={cfg.resume!r} has no checkpoints/last.ckpt to continue from (did the run save checkpoints?)"
        )
    # dlrecipe.trust: only callables dlrecipe builds (or this command's trusted_targets), written
    # only into this run directory; refused if the config inside or the run's .hydra one is not
    paths = {"output_dir": str(run_dir.resolve()), "data_dir": cfg.paths.data_dir}
    checkpoint = load_checkpoint(last, paths=paths)
    if CONFIG_KEY not in checkpoint:
        raise ConfigError(f"{last} holds no dlrecipe config; it was not written by dlrecipe.train")
    original = trusted_config(checkpoint[CONFIG_KEY], last, paths)
    for key, value in _command_line_values():
        if OmegaConf.select(original, key, default="__missing__") == "__missing__":
            raise ConfigError(f"resume: {key} is not a key of the run's config")
        OmegaConf.update(original, key, value, merge=False)
    with open_dict(original):
        original.paths.output_dir = str(run_dir.resolve())
        original.ckpt_path = str(last)
        original.resume = None
        wandb = (original.get("logger") or {}).get("wandb")
        run_id = _wandb_run_id(run_dir)
        if wandb and run_id:
            wandb.id, wandb.resume = run_id, "allow"
    return original


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
