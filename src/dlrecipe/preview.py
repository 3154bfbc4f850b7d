"""Preview augmentation: a PNG grid of training samples and augmented versions of them.

    python -m dlrecipe.preview data=digits data/augmentation=strong
    python -m dlrecipe.preview data=image_folder data.source.root=photos 'data.augmentation.ops=[hflip,rotate]'

Composed from the same conf/ as training, so every data override works. The grid is written
to outputs/preview/<date>/<time>/augmentation_preview.png.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from dlrecipe.builders import build_data
from dlrecipe.console import say
from dlrecipe.edge import hydra_command
from dlrecipe.errors import ConfigError
from dlrecipe.report.augmentation_grid import save_augmentation_grid


def preview(cfg: DictConfig) -> Path:
    datamodule = build_data(cfg)
    if not datamodule.info.is_image:
        raise ConfigError(
            f"preview shows images, but data={cfg.data.source.get('name', 'this data')} is a table"
        )
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = save_augmentation_grid(
        datamodule, out_dir / "augmentation_preview.png", cfg.preview.samples, cfg.preview.versions
    )
    say(f"augmentation preview: {path}")  # the path whole, copyable
    return path


@hydra_command("preview")  # one-line errors for Hydra's and the libraries' mistakes too
def main(cfg: DictConfig) -> None:
    preview(cfg)


if __name__ == "__main__":
    main()
