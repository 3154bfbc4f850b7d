"""Per-key help: every key of a composed config group with its why-comment from conf/.

    python -m dlrecipe.keys model                      # the default model's keys, one line each
    dlrecipe-keys model.optimizer model/optimizer=sgd  # any overrides select what gets composed
    dlrecipe-keys --config eval predict

The comments are the YAML's trailing `# ...` on each key line; where an experiment or debug
preset sets a key with its own comment, that comment wins (it is the reason for this value).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from dlrecipe.configs import key_comments
from dlrecipe.edge import ArgumentParser, user_error
from dlrecipe.errors import ConfigError

# Presets applied after the group files (`_global_` packages): their comments explain the values.
LATE_GROUPS = ("experiment", "debug", "hparams_search")


def comments_for(choices: dict[str, Any], config_name: str, conf: Path) -> dict[str, str]:
    """{dotted key: comment} from the files a composition used (hydra.runtime.choices)."""
    found: dict[str, str] = {}
    ordered = sorted(choices.items(), key=lambda kv: kv[0].split("/")[0] in LATE_GROUPS)
    late = [(g, o) for g, o in ordered if g.split("/")[0] in LATE_GROUPS]
    early = [(g, o) for g, o in ordered if g.split("/")[0] not in LATE_GROUPS]
    primary = conf / f"{config_name}.yaml"
    for group, option in [*early, ("", None), *late]:
        path = primary if group == "" else conf / group / f"{option}.yaml"
        if group and (option is None or not path.is_file()):
            continue  # null options, and plugin configs registered in code (no file here)
        found.update(key_comments(path, group.replace("/", ".")))
    return found


def key_lines(cfg: DictConfig, group: str, comments: dict[str, str]) -> list[str]:
    """`key = value  # comment` for each leaf (and each commented mapping) under `group`."""
    node = OmegaConf.select(cfg, group) if group else cfg
    if node is None or not isinstance(node, DictConfig | ListConfig):
        top = ", ".join(str(k) for k in cfg if k != "hydra")
        raise ConfigError(f"{group!r} is not a config group of this config; choose one of {top}")
    plain = OmegaConf.to_container(node, resolve=False)
    lines: list[str] = []

    def walk(value: Any, path: str) -> None:
        comment = comments.get(path)
        if isinstance(value, dict) and value:
            if comment:
                lines.append(f"{path}:  # {comment}")
            for key, sub in value.items():
                walk(sub, f"{path}.{key}" if path else str(key))
            return
        lines.append(f"{path} = {_shown(value)}" + (f"  # {comment}" if comment else ""))

    walk(plain, group)
    return lines


def _shown(value: Any) -> str:
    """A value as it would be typed on the command line (lists in brackets, null, true)."""
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_shown(v)}" for k, v in value.items()) + "}"
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="dlrecipe-keys", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "group", nargs="?", default="", help="model, data.split, trainer ... (empty: all)"
    )
    parser.add_argument("overrides", nargs="*", help="overrides, as on the train command line")
    parser.add_argument(
        "--config", default="train", help="train | eval | preview | lr_find | data_curve"
    )
    args = parser.parse_args(argv)
    try:
        from hydra import compose, initialize_config_dir

        from dlrecipe import builders  # registers the trainer's open node, as a run does

        conf = builders.CONF_DIR
        with initialize_config_dir(str(conf), version_base="1.3"):
            cfg = compose(args.config, overrides=args.overrides, return_hydra_config=True)
        choices = OmegaConf.to_container(cfg.hydra.runtime.choices)
        comments = comments_for(
            {g: o for g, o in choices.items() if not g.startswith("hydra/")}, args.config, conf
        )
        with open_dict(cfg):
            del cfg["hydra"]  # Hydra's own keys are documented by Hydra
        lines = key_lines(cfg, args.group.replace("/", "."), comments)
    except Exception as err:  # a user's mistake: one line, exit 2; a bug: its traceback
        return user_error(err, argv)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
