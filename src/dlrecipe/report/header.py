"""The report's header: experiment name, the overrides the run was started with, its config.

    python -m dlrecipe.report outputs/train/<date>/<time>    # header from <run dir>/.hydra/

Everything comes from files of the run directory, so it is read as data (yaml.safe_load, never
instantiated) and may be missing or malformed: the header then says so instead of failing the
report. The config is copied next to index.html so the report folder can be shared alone;
passwords in URLs and values of secret-looking keys are masked in the copy and on the page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# user:password@host in storage URLs (postgresql://, mysql://, https://) -> user:***@host
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")
# a key naming a secret, in YAML (`  api_key: abc`) or an override (`logger.x.api_key=abc`)
_SECRET_KEY = r"[\w.-]*(?:password|passwd|token|secret|api_key|apikey)[\w.-]*"
_YAML_SECRET = re.compile(rf"(?im)^(\s*{_SECRET_KEY}\s*:\s*)(?!null\s*$)(\S.*)$")
_OVERRIDE_SECRET = re.compile(rf"(?i)^([+~]*{_SECRET_KEY}=)(.+)$")


def redact(text: str) -> str:
    """Mask URL passwords and the values of secret-named keys (YAML lines or key=value)."""
    text = _URL_PASSWORD.sub(r"\1***@", text)
    text = _YAML_SECRET.sub(r"\1'***'", text)
    return "\n".join(_OVERRIDE_SECRET.sub(r"\1***", line) for line in text.split("\n"))


@dataclass
class Header:
    name: str  # the experiment (task_name), or the run directory's name without a config
    overrides: list[str] = field(default_factory=list)
    config: str | None = None  # the copied config's file name inside report/
    problems: list[str] = field(default_factory=list)  # what could not be read, one line each


def read_header(run_dir: Path, out: Path) -> Header:
    """Read <run_dir>/.hydra/{config,overrides}.yaml and copy the (masked) config into out."""
    hydra = run_dir / ".hydra"
    header = Header(name=run_dir.name)
    config = hydra / "config.yaml"
    if config.is_file():
        text = config.read_text(errors="replace")
        (out / "config.yaml").write_text(redact(text))
        header.config = "config.yaml"
        try:
            loaded = yaml.safe_load(text)
            name = loaded.get("task_name") if isinstance(loaded, dict) else None
            if isinstance(name, str) and name:
                header.name = name
        except yaml.YAMLError as err:
            header.problems.append(f"{config} is not valid YAML ({type(err).__name__})")
    else:
        header.problems.append("no .hydra/config.yaml in the run directory (started without Hydra)")
    overrides = hydra / "overrides.yaml"
    if overrides.is_file():
        try:
            loaded = yaml.safe_load(overrides.read_text(errors="replace"))
        except yaml.YAMLError as err:
            loaded = err
        if isinstance(loaded, list) and all(isinstance(o, str) for o in loaded):
            header.overrides = [redact(o) for o in loaded]
        elif loaded is not None:  # an empty file: no overrides
            header.problems.append(f"{overrides} is not a list of overrides; ignored")
    return header
