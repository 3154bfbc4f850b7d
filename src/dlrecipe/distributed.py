"""DDP inside a Hydra multirun (sweeps): make Lightning's re-launched ranks run this one job.

    python -m dlrecipe.train hparams_search=digits_lr_bs trainer=ddp_cpu

Lightning starts ranks 1..k-1 by re-running the original command line. Inside a multirun that
command is the whole sweep, so every extra rank would start a sweep of its own (phantom
trials, a corrupted study). Before fit, rank 0 rewrites what Lightning will re-run into a
single run of this job's own overrides in this job's directory; after the job it leaves the
process group, so the next job of the sweep starts clean.
"""

from __future__ import annotations

import os

DDP_ENV = ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def relaunch_this_job_only() -> None:
    """Point Lightning's re-launch of extra ranks at this job (call on rank 0 before fit)."""
    if not in_multirun() or "LOCAL_RANK" in os.environ:
        return
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict, read_write

    from dlrecipe.compat import relaunch_ranks_as

    hydra_cfg = HydraConfig.get()
    relaunch_ranks_as("dlrecipe.train", [*hydra_cfg.overrides.task, "hydra.mode=RUN"])
    with read_write(hydra_cfg.run), open_dict(hydra_cfg.run):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir


def leave_process_group() -> None:
    """After a DDP job in a multirun: the next job must not think it is a DDP child."""
    if not in_multirun():
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    for key in DDP_ENV:
        os.environ.pop(key, None)


def is_child_rank() -> bool:
    """A rank > 0 started by Lightning (it exits quietly instead of reporting to a sweep)."""
    return int(os.environ.get("LOCAL_RANK", "0")) > 0 or int(os.environ.get("NODE_RANK", "0")) > 0
