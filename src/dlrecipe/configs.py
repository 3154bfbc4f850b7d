"""Where the configs come from, and each key's why-comment (for `dlrecipe-keys`).

    python -c "from dlrecipe.configs import conf_dir; print(conf_dir())"

Precedence: $DLRECIPE_CONF (a folder laid out like conf/) > the `conf/` next to `src/` in a
cloned template (what users edit) > the copy shipped inside the package (`dlrecipe/conf`,
made at build time by setup.py), so a non-editable install works from any directory.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
from pathlib import Path

from dlrecipe.errors import ConfigError

ENV_VAR = "DLRECIPE_CONF"
_HERE = Path(__file__).resolve().parent
# src/dlrecipe/configs.py -> the repo root, when this file runs from a source tree
SOURCE_CONF = _HERE.parents[1] / "conf" if _HERE.parent.name == "src" else None
PACKAGED_CONF = _HERE / "conf"


def conf_dir() -> Path:
    """The config folder this process composes from (see the module docstring)."""
    given = os.environ.get(ENV_VAR)
    if given:
        return Path(given).expanduser().resolve()
    if SOURCE_CONF is not None and (SOURCE_CONF / "train.yaml").is_file():
        return SOURCE_CONF
    return PACKAGED_CONF


def check_conf_dir(path: Path | None = None) -> Path:
    """One line naming DLRECIPE_CONF (or the install) when the folder has no train.yaml."""
    path = path or conf_dir()
    if (path / "train.yaml").is_file():
        return path
    if os.environ.get(ENV_VAR):
        raise ConfigError(
            f"{ENV_VAR}={os.environ[ENV_VAR]} has no train.yaml; point it at a copy of the "
            f"template's conf/ folder, or unset it to use the packaged configs"
        )
    raise ConfigError(
        f"no configs found at {path}: reinstall dlrecipe (pip install dlrecipe) or set "
        f"{ENV_VAR}=<a copy of the template's conf/ folder>"
    )


# key: value  # why   -- the trailing comment of a YAML line (not one inside quotes)
_KEY_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][\w\-]*)\s*:(?P<rest>.*)$")
_PACKAGE = re.compile(r"^#\s*@package\s+(\S+)")


def _trailing_comment(rest: str) -> str | None:
    quote = None
    for i, ch in enumerate(rest):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or rest[i - 1].isspace()):
            return rest[i + 1 :].strip() or None
    return None


def key_comments(path: Path, package: str) -> dict[str, str]:
    """{dotted key: its trailing why-comment} of one YAML file, keys under `package`.

    A `# @package _global_` (or other) header replaces the group's default package.
    """
    text = path.read_text()
    header = next((m.group(1) for m in map(_PACKAGE.match, text.splitlines()) if m), None)
    if header is not None:
        package = "" if header == "_global_" else header.removeprefix("_global_.")
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []  # (indent, key) of the enclosing mappings
    for line in text.splitlines():
        match = _KEY_LINE.match(line)
        if not match or line.lstrip().startswith("#"):
            continue
        indent = len(match.group("indent"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = match.group("key")
        stack.append((indent, key))
        if [k for _, k in stack][:1] == ["defaults"]:
            continue
        comment = _trailing_comment(match.group("rest"))
        if comment:
            dotted = ".".join([*([package] if package else []), *(k for _, k in stack)])
            comments[dotted] = comment
    return comments


# The DataModule's own arguments (data/datamodule.py; tests/test_config_contract.py keeps the two
# in step). Any other data.<key> of a run stored before source arguments moved to data.source.*
# is one of its source's arguments.
DATAMODULE_KEYS = frozenset({
    "_target_", "source", "split", "normalization", "augmentation", "batch_size", "eval_batch_size",
    "num_workers", "seed", "fast_path", "classes", "similar_to_pretraining", "target_scaling",
})  # fmt: skip


def upgrade_layout(config: dict) -> dict:
    """A stored run config in today's layout: data.<source arg> (before 2026-12) -> data.source.<arg>.

    Checkpoints and run directories written earlier still evaluate, resume their weights and
    serve as backbones; the renamed keys are listed in the README ("Renamed keys").
    """
    data = config.get("data")
    if isinstance(data, dict) and isinstance(data.get("source"), dict):
        for key in [k for k in data if k not in DATAMODULE_KEYS]:
            value = data.pop(key)
            if isinstance(value, str) and value.startswith(
                "${."
            ):  # ${.num_workers}: one level up now
                value = "${." + value[2:]
            data["source"].setdefault(key, value)
    return config


@functools.lru_cache(maxsize=64)
def target_signature(target: str) -> inspect.Signature | None:
    """The signature of a `_target_` (a class or function path); None when it cannot be read."""
    from hydra.utils import get_object

    try:
        return inspect.signature(get_object(target))
    except Exception:  # not importable here, or a builtin without a signature
        return None


@functools.lru_cache(maxsize=64)
def code_defaults(target: str) -> dict:
    """{argument: default} of a `_target_` (a class or function path); {} when it cannot be read.

    The YAML sets only what differs from these, so whoever reads a config for what a run will
    build (the linter) looks here for a key the YAML leaves out.
    """
    sig = target_signature(target)
    parameters = sig.parameters if sig is not None else {}
    return {k: p.default for k, p in parameters.items() if p.default is not inspect.Parameter.empty}
