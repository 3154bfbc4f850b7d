"""Evaluate a checkpoint exactly as its run would, and optionally predict new inputs.

    python -m dlrecipe.eval ckpt_path=outputs/train/<date>/<time>/checkpoints/best-epoch013.ckpt
    python -m dlrecipe.eval ckpt_path=<ckpt> predict.input=new_rows.csv   # -> predictions.csv
    python -m dlrecipe.eval ckpt_path=<K-fold run dir> predict.input=...   # the fold ensemble

The run's own config (its .hydra/config.yaml, or the copy inside the checkpoint) rebuilds the
data pipeline (same split, the checkpoint's normalization statistics) and the model, so the
test metrics printed here equal those of the training run.
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from dlrecipe.builders import CONF_DIR, build_data, build_model, instantiate
from dlrecipe.checkpoints import check_compatible, datamodule_state, load_checkpoint, run_config
from dlrecipe.data.datamodule import DataModule
from dlrecipe.ensemble import checkpoints_of, evaluate_ensemble
from dlrecipe.errors import exit_on_config_error
from dlrecipe.models.module import LitModel
from dlrecipe.predict import predict_table
from dlrecipe.trust import use_trusted_targets
from dlrecipe.versions import warn_versions


def restore(
    ckpt_path: str | Path, paths: DictConfig | None = None
) -> tuple[DictConfig, DataModule, LitModel]:
    """The run that wrote a checkpoint, rebuilt: its config, its data pipeline, its weights."""
    checkpoint = load_checkpoint(ckpt_path)
    warn_versions(checkpoint, ckpt_path)  # torch / Lightning moved since training: one line
    # Checked by dlrecipe.trust; paths are this run's (None: the checkpoint's run, outside Hydra),
    # so data paths are relative to here and nothing is written into the old run.
    run_cfg = run_config(ckpt_path, checkpoint, paths)
    datamodule = build_data(run_cfg)
    state = datamodule_state(checkpoint)
    if state:
        datamodule.load_state_dict(state)
    backbone = OmegaConf.select(run_cfg, "model.net.backbone")
    if backbone is not None and backbone.get("source") != "dlrecipe":
        backbone.weights = "none"  # the checkpoint holds every weight: no hub, no weight file
    model = build_model(run_cfg, datamodule.info)
    check_compatible(checkpoint, model, ckpt_path)
    model.load_state_dict(checkpoint["state_dict"])
    return run_cfg, datamodule, model


def evaluate(cfg: DictConfig) -> dict[str, float]:
    use_trusted_targets(cfg.get("trusted_targets"))  # this command's, never the checkpoint's
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpts = checkpoints_of(cfg.ckpt_path)  # a run directory: its model, or its fold ensemble
    if len(ckpts) > 1:
        return evaluate_ensemble(cfg, ckpts, run_dir)
    _, datamodule, model = restore(ckpts[0], cfg.paths)

    trainer = instantiate(
        cfg.trainer,
        logger=False,
        callbacks=[],
        default_root_dir=str(run_dir),
        enable_checkpointing=False,
        enable_model_summary=False,
        _convert_="all",
    )
    results = trainer.test(model, datamodule=datamodule, verbose=False)
    metrics = {k: float(v) for k, v in results[0].items()} if results else {}
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _print(metrics, str(cfg.ckpt_path))

    if cfg.predict.input:
        table = predict_table(model, datamodule, cfg.predict.input)
        out = run_dir / cfg.predict.output
        table.to_csv(out, index=False)
        Console().print(f"wrote {len(table)} predictions to {out}")
    return metrics


def _print(metrics: dict[str, float], ckpt: str) -> None:
    table = Table(title=f"test metrics of {ckpt}", title_justify="left")
    table.add_column("metric")
    table.add_column("test", justify="right")
    for name, value in sorted(metrics.items()):
        table.add_row(name.removeprefix("test/"), f"{value:.6f}")
    Console().print(table)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
@exit_on_config_error
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
