"""Rebuild the run that wrote a checkpoint: its config (checked by dlrecipe.trust), its data
pipeline with the checkpoint's normalization, its weights. Eval, the fold ensemble and the
report start here.

    python -c "from dlrecipe.restore import restore; print(restore('<run>/checkpoints/last.ckpt')[2])"
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dlrecipe.builders import build_data, build_model
from dlrecipe.checkpoints import check_compatible, datamodule_state, load_checkpoint, run_config
from dlrecipe.data.datamodule import DataModule
from dlrecipe.errors import ConfigError
from dlrecipe.models.module import LitModel
from dlrecipe.versions import warn_versions

DATA_LOCATIONS = ("path", "root")  # the data keys eval may re-point (data=csv, data=image_folder)


def restore(
    ckpt_path: str | Path, paths: DictConfig | None = None, data: DictConfig | None = None
) -> tuple[DictConfig, DataModule, LitModel]:
    """The run that wrote a checkpoint, rebuilt: its config, its data pipeline, its weights.

    `data` re-points the run's data (keys source.path / source.root) when it moved since the run.
    """
    checkpoint = load_checkpoint(ckpt_path)
    warn_versions(checkpoint, ckpt_path)  # torch / Lightning moved since training: one line
    # Checked by dlrecipe.trust; paths are this run's (None: the checkpoint's run, outside Hydra),
    # so data paths are relative to here and nothing is written into the old run.
    run_cfg = run_config(ckpt_path, checkpoint, paths)
    repoint_data(run_cfg, data)
    datamodule = build_data(run_cfg)
    state = datamodule_state(checkpoint)
    if state:
        datamodule.load_data_state(state)
    backbone = OmegaConf.select(run_cfg, "model.net.backbone")
    if backbone is not None and backbone.get("source") != "dlrecipe":
        backbone.weights = "none"  # the checkpoint holds every weight: no hub, no weight file
    model = build_model(run_cfg, datamodule.info)
    check_compatible(checkpoint, model, ckpt_path)
    model.load_state_dict(checkpoint["state_dict"])
    return run_cfg, datamodule, model


def repoint_data(run_cfg: DictConfig, data: DictConfig | None) -> None:
    """Apply eval's data.source.path / data.source.root; refuse a stored data location that is gone."""
    given = (data or {}).get("source") or {}
    source = run_cfg.data.get("source") or {}
    for key in DATA_LOCATIONS:
        new = given.get(key)
        if new is not None:
            if key not in source:
                raise ConfigError(
                    f"data.source.{key}={new!r}: the run's data has no {key} "
                    f"(it re-points data=csv by data.source.path, data=image_folder by data.source.root)"
                )
            if not Path(str(new)).expanduser().exists():
                raise ConfigError(
                    f"data.source.{key}={new!r} does not exist; point it at the run's data"
                )
            source[key] = str(new)
        stored = source.get(key) if key in source else None
        if isinstance(stored, str) and not Path(stored).expanduser().exists():
            raise ConfigError(
                f"data.source.{key}={stored!r}, the training data of this run, is not there any more; "
                f"give eval its new place with data.source.{key}=<where it is now>"
            )
