"""What makes a study one study: its search space and fixed settings, recorded at creation.

    python -m dlrecipe.train hparams_search=wine_mlp_search trainer.max_epochs=20   # after a sweep with 40: one line, exit 2

Optuna happily appends trials from any space to an existing study, so a re-run with one more
searched key (or another fixed setting such as trainer.max_epochs) would silently mix results
that cannot be compared. The first sweeper on a study stores both as study user attributes;
every later one compares and stops with one line naming `hydra.sweeper.study_name`. Fixed
settings are stored as one short hash per key (never the values: a config may hold paths or
tokens a shared study database should not show), so the message can still name the keys.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, distribution_to_json

from dlrecipe.errors import ConfigError

SPACE_ATTR, FIXED_ATTR = "dlrecipe_space", "dlrecipe_fixed"
# Keys that say how a trial runs or where its output goes, not what it computes: changing them
# (a progress bar, a logger, the report) keeps the trials comparable, so it is no new study.
NOT_IDENTITY = ("hydra", "optuna", "tags", "extras", "report", "logger", "callbacks.progress_bar",
                "callbacks.model_summary", "trainer.enable_progress_bar", "trainer.enable_model_summary")  # fmt: skip


def space_identity(space: dict[str, BaseDistribution]) -> dict[str, str]:
    """Each searched key's distribution as Optuna's own JSON."""
    return {key: distribution_to_json(dist) for key, dist in sorted(space.items())}


def fixed_identity(config: DictConfig, searched: list[str]) -> dict[str, str]:
    """A short hash of every composed key's value, minus searched and run-only keys."""
    tree = OmegaConf.to_container(config, resolve=False)  # interpolations as written: stable
    flat: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
            return
        key = prefix[:-1]
        skipped = (*NOT_IDENTITY, *searched)
        if any(key == s or key.startswith(f"{s}.") for s in skipped):
            return
        text = json.dumps(node, sort_keys=True, default=str)
        flat[key] = hashlib.sha256(text.encode()).hexdigest()[:12]

    walk(tree, "")
    return dict(sorted(flat.items()))


def check_identity(study: optuna.Study, space: dict[str, str], fixed: dict[str, str]) -> None:
    """Record the identity on a new study; refuse a different one on an existing study.

    A study made before identities were recorded (or by Optuna directly) adopts this one.
    """
    attrs = study.user_attrs
    if SPACE_ATTR not in attrs or FIXED_ATTR not in attrs:
        study.set_user_attr(SPACE_ATTR, space)
        study.set_user_attr(FIXED_ATTR, fixed)
        return
    name = study.study_name
    old_space, old_fixed = attrs[SPACE_ATTR], attrs[FIXED_ATTR]
    if not isinstance(old_space, dict) or not isinstance(old_fixed, dict):
        raise ConfigError(
            f"study {name!r} holds an unreadable {SPACE_ATTR}/{FIXED_ATTR} record; "
            f"name a new study: hydra.sweeper.study_name={name}_v2"
        )
    what = _differences("search space", old_space, space) or _differences(
        "fixed settings", old_fixed, fixed
    )
    if what:
        raise ConfigError(
            f"study {name!r} was made with {what}; its trials would not be comparable. Keep the old "
            f"space and settings to continue it, or name a new study: hydra.sweeper.study_name={name}_v2"
        )


def _differences(kind: str, old: dict[str, Any], new: dict[str, str]) -> str:
    parts = []
    for label, keys in (
        ("added", sorted(set(new) - set(old))),
        ("removed", sorted(set(old) - set(new))),
        ("changed", sorted(k for k in set(old) & set(new) if old[k] != new[k])),
    ):
        if keys:
            shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
            parts.append(f"{label} {shown}")
    return f"a different {kind} (now: {'; '.join(parts)})" if parts else ""
