"""Every image of a folder fully decoded once before training; the verdicts cached.

    python -c "from dlrecipe.data.sources.image_checks import verify_images as v; from pathlib import Path; print(v(sorted(Path('imgs').rglob('*.png')), 'imgs'))"

Opening an image reads only its header: a truncated PNG opens fine and fails when its pixels are
decoded, which in a lazily read folder happens in a DataLoader worker at some later epoch. So
every file is decoded in full once, at set-up; the verdict (its mode, or why it cannot be read)
is cached in a small JSON file keyed by path, size and modification time, so later runs decode
only new or changed files. The cache lives outside the data folder (which may be read-only or
shared): `data.source.check_cache`, by default $DLRECIPE_CACHE_DIR/image_checks/ or
~/.cache/dlrecipe/image_checks/.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from torch.utils.data import DataLoader, Dataset

from dlrecipe.errors import ConfigError

# PIL modes holding one intensity per pixel (with or without alpha); every other mode has colour.
GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
CACHE_VERSION = 1  # bump when what a verdict means changes, so old caches are ignored


def default_cache_dir() -> Path:
    """$DLRECIPE_CACHE_DIR/image_checks, else the user's cache folder (XDG)."""
    if os.environ.get("DLRECIPE_CACHE_DIR"):
        return Path(os.environ["DLRECIPE_CACHE_DIR"]) / "image_checks"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dlrecipe" / "image_checks"


class _Verdicts(Dataset):
    """Decodes file i in full: ("ok", mode) or ("bad", reason); never raises into a worker."""

    def __init__(self, files: list[Path]):
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[str, str]:
        from PIL import Image

        try:
            with Image.open(self.files[i]) as img:
                img.load()  # the whole pixel data: a truncated or corrupt file fails here
                return "ok", img.mode
        except Exception as err:  # OSError, SyntaxError, ValueError, DecompressionBombError...
            reason = " ".join(str(err).split())[:120] or type(err).__name__
            return "bad", reason


def _as_list(batch: list) -> list:
    return batch


def _key(file: Path) -> str:
    stat = file.stat()
    return f"{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _read_cache(path: Path) -> dict[str, list[str]]:
    """The cached verdicts; anything malformed is ignored (a cache never decides on its own)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return {}
    verdicts = data.get("verdicts")
    if not isinstance(verdicts, dict):
        return {}
    return {
        k: v
        for k, v in verdicts.items()
        if isinstance(k, str) and isinstance(v, list) and len(v) == 2 and v[0] == "ok"
        and isinstance(v[1], str)
    }  # fmt: skip


def _write_cache(path: Path, verdicts: dict[str, list[str]]) -> None:
    """Atomic replace, so parallel runs never read half a file; a read-only cache is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
            json.dump({"version": CACHE_VERSION, "verdicts": verdicts}, f)
        os.replace(f.name, path)
    except OSError:
        pass  # no cache: the next run verifies again, which is slower but still correct


def verify_images(
    files: list[Path], root: str | Path, cache_dir: str | Path | None = None, workers: int = 0
) -> list[str]:
    """The PIL mode of every file, each fully decoded once (cached); unreadable files refused."""
    folder = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    cache = folder / (hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16] + ".json")
    known = _read_cache(cache)
    keys = [_key(f) for f in files]
    todo = [i for i, k in enumerate(keys) if k not in known]
    if todo:
        loader = DataLoader(_Verdicts([files[i] for i in todo]), batch_size=64,
                            num_workers=workers, collate_fn=_as_list)  # fmt: skip
        fresh = [verdict for batch in loader for verdict in batch]
        bad = [
            (files[i], reason)
            for i, (status, reason) in zip(todo, fresh, strict=True)
            if status == "bad"
        ]
        if bad:
            first, reason = bad[0]
            raise ConfigError(
                f"{len(bad)} image file(s) cannot be decoded, e.g. {str(first)!r} ({reason}); "
                "delete or replace them, then run again"
            )
        known.update({keys[i]: list(verdict) for i, verdict in zip(todo, fresh, strict=True)})
        _write_cache(cache, {k: known[k] for k in keys})  # only this folder's current files
    return [known[k][1] for k in keys]


def mode_choice(modes: list[str], channels: int | None) -> tuple[int, list[str]]:
    """(channels, notes): mixed grey and colour are read as RGB unless data.source.channels says 1.

    Guessing from the first file would turn every colour image grey when that file is grey.
    """
    grey = sum(m in GREY_MODES for m in modes)
    colour = len(modes) - grey
    if channels is None:
        channels = 3 if colour else 1
        if grey and colour:
            return channels, [
                f"the images mix {grey} grey and {colour} colour files: all are read as RGB "
                "(3 channels); data.source.channels=1 reads them all as grey instead"
            ]
    elif channels == 1 and colour:
        return channels, [f"data.source.channels=1: {colour} colour image(s) are converted to grey"]
    return channels, []
