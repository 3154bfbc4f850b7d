"""Evaluate a checkpoint exactly as its run would, and optionally predict new inputs.

    python -m dlrecipe.eval ckpt_path=outputs/train/<date>/<time>/checkpoints/best-epoch013.ckpt
    python -m dlrecipe.eval ckpt_path=<ckpt> predict.input=new_rows.csv   # -> predictions.csv
    python -m dlrecipe.eval ckpt_path=<ckpt> data.source.path=moved/table.csv    # the data moved since
    python -m dlrecipe.eval ckpt_path=<K-fold run dir> predict.input=...   # the fold ensemble

The run's own config (its .hydra/config.yaml, or the copy inside the checkpoint) rebuilds the
data pipeline (same split, the checkpoint's normalization statistics) and the model, so the
test metrics printed here equal those of the training run.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from rich.table import Table

from dlrecipe.builders import instantiate
from dlrecipe.console import say, show
from dlrecipe.edge import hydra_command
from dlrecipe.ensemble import checkpoints_of, evaluate_ensemble
from dlrecipe.errors import ConfigError
from dlrecipe.predict import predict_table
from dlrecipe.quiet import install as quiet_known_noise
from dlrecipe.restore import restore
from dlrecipe.trust import use_trusted_targets


def evaluate(cfg: DictConfig) -> dict[str, float]:
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise ConfigError(
            "ckpt_path is required: python -m dlrecipe.eval "
            "ckpt_path=outputs/train/<date>/<time>/checkpoints/last.ckpt"
        )
    output = cfg.predict.output
    if cfg.predict.input and (not output or Path(str(output)).name != str(output)):
        raise ConfigError(
            f"predict.output={output!r} must be a plain file name (e.g. predictions.csv): it is "
            "written into this eval's own run directory, never over a file elsewhere"
        )
    use_trusted_targets(cfg.get("trusted_targets"))  # this command's, never the checkpoint's
    quiet_known_noise()  # Lightning's advert and known repeated warnings (dlrecipe/quiet.py)
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpts = checkpoints_of(cfg.ckpt_path)  # a run directory: its model, or its fold ensemble
    if len(ckpts) > 1:
        return evaluate_ensemble(cfg, ckpts, run_dir)
    _, datamodule, model = restore(ckpts[0], cfg.paths, cfg.get("data"))

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
        say(f"wrote {len(table)} predictions to {out}")  # the path whole, copyable
    return metrics


def _print(metrics: dict[str, float], ckpt: str) -> None:
    say(f"test metrics of {ckpt}")  # the path whole, not wrapped inside a table title
    table = Table(title_justify="left")
    table.add_column("metric")
    table.add_column("test", justify="right")
    for name, value in sorted(metrics.items()):
        table.add_row(name.removeprefix("test/"), f"{value:.6f}")
    show(table)


@hydra_command("eval")  # one-line errors for Hydra's and the libraries' mistakes too
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
