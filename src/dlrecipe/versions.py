"""Library versions and the git commit of the code, recorded with every run and checkpoint.

    python -c "from dlrecipe.versions import versions; print(versions())"

A result is reproducible only with the code that made it: summary.json and every checkpoint
carry torch, torchvision, Lightning, Hydra, Optuna, dlrecipe and Python versions, the git commit
of the dlrecipe checkout and whether its tree had uncommitted changes (null without git, never
an error). eval warns when the checkpoint's torch or Lightning major.minor differs from the
current one: numerics and defaults change between those releases.
"""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

VERSIONS_KEY = "dlrecipe_versions"  # where a checkpoint keeps them
# distribution name -> the key in summary.json
PACKAGES = {"torch": "torch", "torchvision": "torchvision", "lightning": "lightning",
            "hydra-core": "hydra", "optuna": "optuna", "dlrecipe": "dlrecipe"}  # fmt: skip
# Releases whose major.minor changes can change results (kernels, defaults, loop behaviour).
RESULT_CHANGING = ("torch", "lightning")
SOURCE_DIR = Path(__file__).resolve().parent


def _installed(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(where: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=where, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):  # no git, or it hung
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.cache
def git_state(where: Path = SOURCE_DIR) -> dict[str, Any]:
    """{commit, dirty} of the checkout dlrecipe runs from; both None outside a git tree."""
    commit = _git(where, "rev-parse", "HEAD")
    status = _git(where, "status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


@functools.cache
def _packages() -> tuple[tuple[str, str | None], ...]:
    # Looked up once per process: every checkpoint save asks (an installed version cannot change
    # under a running process without it being restarted to use it).
    return tuple((key, _installed(dist)) for dist, key in PACKAGES.items())


def versions() -> dict[str, Any]:
    """The versions of this process's libraries, Python, and the git commit (see module doc)."""
    found: dict[str, Any] = dict(_packages())
    found["python"] = platform.python_version()
    found["git"] = dict(git_state())
    return found


def _major_minor(version: Any) -> tuple[str, ...] | None:
    if not isinstance(version, str):
        return None
    return tuple(version.split("+")[0].split(".")[:2])


def version_mismatch(saved: Any) -> str | None:
    """One line when the saved torch / Lightning major.minor differs from today's, else None."""
    if not isinstance(saved, dict):
        return None
    now = versions()
    changed = [
        f"{name} {str(saved[name])[:24]} -> {now[name]}"
        for name in RESULT_CHANGING
        if _major_minor(saved.get(name))
        and _major_minor(saved.get(name)) != _major_minor(now[name])
    ]
    if not changed:
        return None
    return (
        f"this checkpoint was written with other library versions ({', '.join(changed)}); "
        "metrics may differ slightly from the training run's"
    )


def warn_versions(checkpoint: dict[str, Any], ckpt_path: Any) -> str | None:
    """Print version_mismatch's line (stderr) for a checkpoint about to be evaluated."""
    line = version_mismatch(checkpoint.get(VERSIONS_KEY))
    if line:
        from rich.console import Console

        Console(stderr=True, soft_wrap=True).print(f"warning: {ckpt_path}: {line}", markup=False)
    return line
