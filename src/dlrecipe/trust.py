"""The trust boundary for configs read from disk: only callables dlrecipe builds get instantiated.

    python -c "from dlrecipe.trust import project_targets; print(*sorted(project_targets()), sep='\\n')"

A checkpoint or a run directory may come from someone else, and `hydra.utils.instantiate` calls
whatever `_target_` names (`pathlib.Path.write_text`, `builtins.exec`, ...). So every config read
from disk (a run's .hydra/config.yaml, the copy inside a checkpoint, an earlier run used as a
backbone, a run to resume) goes through `trusted_config` before anything is built from it:

- every `_target_` anywhere (nested dicts, lists, `_partial_` or not, after resolving
  interpolations) must be one of the EXACT callables the shipped conf/ uses, or one the user named
  in the current command's `trusted_targets` (never the stored config's own list);
- interpolations may use node references and OmegaConf's pure `oc.select` / `oc.dict.*` only:
  `${oc.env:...}` would copy this machine's environment (tokens, passwords) into outputs and
  messages, and `${hydra:...}` this invocation's Hydra config (which may hold a storage URL);
- `paths` become the current run's; anything written (`dirpath`, `save_dir`, ...) lands inside
  the current run directory (a stored path outside it is brought inside, with a warning);
  downloads are switched off; the sweep connection (`optuna.*`) is dropped, so a loaded run
  reports to no study and opens no journal unless this command line says so.

Anything else is refused with one line naming the file, the key and the way to allow it.
"""

from __future__ import annotations

import copy
import functools
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dlrecipe.configs import conf_dir, upgrade_layout
from dlrecipe.errors import ConfigError

log = logging.getLogger(__name__)

CONF_DIR = conf_dir()  # the configs this install composes from (dlrecipe.configs)
# Resolvers that only read other nodes of the same config: nothing from the machine or the process.
SAFE_RESOLVERS = frozenset({"oc.select", "oc.dict.keys", "oc.dict.values"})
# Keys of Lightning / logger arguments that name where files are written (besides those found in
# conf/ as `${paths.output_dir}...`): a stored value never points outside the current run.
WRITE_KEYS = frozenset({"default_root_dir", "log_dir", "dirpath", "save_dir"})
_RESOLVER = re.compile(r"\$\{\s*([A-Za-z_][\w.\-]*)\s*:")
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")

# Set by each entry point from ITS OWN config (train, eval) or flags (report); read by every
# loading path, including ones deep inside a model's constructor (an earlier run as a backbone).
_explicit: ContextVar[frozenset[str]] = ContextVar("trusted_targets", default=frozenset())
_extra_targets: ContextVar[frozenset[str]] = ContextVar("trusted_too", default=frozenset())


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(key path, container, key) for every entry of nested dicts and lists."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in list(items):
        sub = f"{path}[{key}]" if isinstance(node, list) else f"{path}.{key}" if path else str(key)
        yield sub, node, key
        if isinstance(value, dict | list):
            yield from _walk(value, sub)


@functools.cache
def project_targets() -> frozenset[str]:
    """Every `_target_` of the shipped conf/**/*.yaml (read once): what dlrecipe itself builds."""
    found: set[str] = set()
    for path in sorted(CONF_DIR.rglob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        if isinstance(data, dict | list):
            found.update(
                str(c[k]) for _, c, k in _walk(data) if k == "_target_" and isinstance(c[k], str)
            )
    return frozenset(t for t in found if "${" not in t) | EARLIER_TARGETS


# Targets earlier versions' conf/ shipped: runs and checkpoints they stored still resume and eval.
EARLIER_TARGETS = frozenset({"lightning.pytorch.callbacks.ModelCheckpoint"})  # last_checkpoint


@functools.cache
def _write_keys() -> frozenset[str]:
    """WRITE_KEYS plus each conf/ key whose value derives from the run directory."""
    found = set(WRITE_KEYS)
    for path in CONF_DIR.rglob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        if isinstance(data, dict | list):
            found.update(
                str(k)
                for _, c, k in _walk(data)
                if isinstance(c[k], str) and ("paths.output_dir" in c[k] or "hydra:runtime" in c[k])
            )
    return frozenset(found - {"output_dir"})  # paths.output_dir itself is replaced, not checked


def use_trusted_targets(
    targets: Iterable[str] | None, current: DictConfig | None = None
) -> frozenset[str]:
    """Set the current command's `trusted_targets` (replacing any earlier); returns them.

    `current`: this command's own config; the targets it builds anyway are trusted as well
    (a run of your own classes can be continued from its checkpoint without listing them).
    """
    if isinstance(targets, str):
        targets = [targets]
    if targets is not None and (isinstance(targets, Mapping) or not isinstance(targets, Iterable)):
        raise ConfigError(
            f"trusted_targets={targets!r} must be a list of callables, e.g. "
            "trusted_targets=['my_pkg.nets.MyNet']"
        )
    names = frozenset(str(t).strip() for t in (targets or []))
    for name in names:
        if not _DOTTED.fullmatch(name):
            raise ConfigError(
                f"trusted_targets: {name!r} is not a dotted callable name; list exact callables, "
                "e.g. trusted_targets=['my_pkg.nets.MyNet'] (no wildcards, no module prefixes)"
            )
    _explicit.set(names)
    if current is not None:
        own = OmegaConf.to_container(current, resolve=False)
        names |= {
            c[k]
            for _, c, k in _walk(own)
            if k == "_target_" and isinstance(c[k], str) and "${" not in c[k]
        }
    _extra_targets.set(names)
    return names


def trusted_config(
    stored: Mapping[str, Any] | DictConfig,
    source: str | Path,
    paths: Mapping[str, Any],
    trusted: Iterable[str] | None = None,
) -> DictConfig:
    """A stored config made safe to instantiate, or ConfigError naming `source` and the key.

    `paths` are the current run's (output_dir, data_dir): they replace the stored ones. `trusted`
    defaults to the current command's trusted_targets (see use_trusted_targets).
    """
    try:
        return _checked(stored, source, paths, trusted)
    except RecursionError:  # a hand-made config nested thousands deep
        raise ConfigError(f"{source}: the stored config is nested too deeply to check") from None


def _checked(
    stored: Mapping[str, Any] | DictConfig,
    source: str | Path,
    paths: Mapping[str, Any],
    trusted: Iterable[str] | None,
) -> DictConfig:
    extra = _extra_targets.get() if trusted is None else frozenset(trusted)
    config = upgrade_layout(_plain(stored, source))  # a run stored before data.source.*
    old_paths = config.get("paths") if isinstance(config.get("paths"), dict) else {}
    current = {k: (None if v is None else str(v)) for k, v in dict(paths).items()}
    config["paths"] = current
    # the current command's list, never the stored one
    config["trusted_targets"] = sorted(_explicit.get() if trusted is None else extra)
    if isinstance(config.get("optuna"), dict):  # no writes to a study or journal named on disk
        config["optuna"] = dict.fromkeys(config["optuna"])
    if "resume" in config:
        config["resume"] = None

    for key_path, container, key in _walk(config):
        value = container[key]
        if not isinstance(value, str):
            continue
        for name in _RESOLVER.findall(value):
            if name not in SAFE_RESOLVERS:
                raise ConfigError(f"{source}: {key_path}={value!r} {_resolver_reason(name)}")
    try:
        resolved = OmegaConf.to_container(OmegaConf.create(config), resolve=True)
    except OmegaConfBaseException as err:
        line = str(err).splitlines()[0]
        where = f"{err.full_key}: " if getattr(err, "full_key", None) else ""
        raise ConfigError(
            f"{source}: {where}the config does not resolve ({line}); was it written by dlrecipe?"
        ) from None

    allowed = project_targets() | extra
    for key_path, container, key in _walk(resolved):
        value = container[key]
        if isinstance(value, str) and "${" in value:  # would be resolved again once rebuilt
            raise ConfigError(
                f"{source}: {key_path}={value!r} builds an interpolation; a stored config may not"
            )
        if key == "_target_" and (not isinstance(value, str) or value not in allowed):
            raise ConfigError(
                f"{source}: {key_path}={value!r} is not a target dlrecipe builds; if you trust "
                f"it add it to the command: trusted_targets=['{value}']"
            )
        if key == "download" and value:
            log.warning("%s: %s=%r switched off for a stored config", source, key_path, value)
            container[key] = False
        elif key in _write_keys() and isinstance(value, str) and key_path.split(".")[0] != "paths":
            container[key] = _inside_run(value, key_path, source, old_paths, current)
        elif key == "dir" and isinstance(value, str) and value == _plain_str(old_paths, "data_dir"):
            container[key] = current.get("data_dir") or value  # the data set lives here now
    return OmegaConf.create(resolved)


def _plain(stored: Mapping[str, Any] | DictConfig, source: str | Path) -> dict[str, Any]:
    """A deep plain copy (nothing resolved yet); only YAML's plain types are accepted."""
    if isinstance(stored, DictConfig):
        try:
            stored = OmegaConf.to_container(stored, resolve=False)
        except OmegaConfBaseException as err:
            raise ConfigError(f"{source}: unreadable config ({err})") from None
    if not isinstance(stored, Mapping):
        raise ConfigError(
            f"{source}: the stored config is a {type(stored).__name__}, not a mapping; "
            "was it written by dlrecipe?"
        )
    config = copy.deepcopy(dict(stored))
    for key_path, container, key in _walk(config):
        value = container[key]
        if not isinstance(key, str | int) or not isinstance(
            value, str | int | float | bool | dict | list | type(None)
        ):
            raise ConfigError(
                f"{source}: {key_path} holds a {type(value).__name__}; a dlrecipe config "
                "holds only YAML values"
            )
    return config


def _resolver_reason(name: str) -> str:
    if name == "oc.env":
        return (
            "reads an environment variable; a stored config may not (it could copy a secret into "
            "outputs and messages): write the value into the config instead"
        )
    if name == "hydra":
        return "reads this command's Hydra config; a stored config may not: write the value instead"
    return f"calls the resolver {name!r}; a stored config may use plain ${{key}} references only"


def _plain_str(node: Mapping[str, Any], key: str) -> str | None:
    value = node.get(key)
    return value if isinstance(value, str) and "${" not in value else None


def _inside_run(
    value: str, key_path: str, source: str | Path, old: Mapping[str, Any], new: Mapping[str, Any]
) -> str:
    """`value` moved from the stored run directory into the current one; a path outside both
    is brought inside too (its last part kept), with a warning: never written where it points."""
    run_dir = Path(new.get("output_dir") or ".").expanduser().resolve()
    old_dir = _plain_str(old, "output_dir")
    path = Path(value).expanduser()
    if old_dir is not None and path.is_relative_to(old_dir):  # the run's own files, moved here
        path = run_dir / path.relative_to(old_dir)
    path = path.resolve()
    if not path.is_relative_to(run_dir):
        inside = run_dir / path.name
        log.warning(
            "%s: %s=%r is outside this run's directory; writing to %s instead",
            source, key_path, value, inside,
        )  # fmt: skip
        path = inside
    return str(path)
