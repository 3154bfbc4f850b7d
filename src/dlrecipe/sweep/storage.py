"""Optuna storages from one string: a journal file (default, no server), SQLite or PostgreSQL.

    hydra.sweeper.storage=null                                # $DLRECIPE_STORAGE, else <sweep dir>/study.journal
    hydra.sweeper.storage=sqlite:///outputs/sweeps.db
    hydra.sweeper.storage=file:/home/me/.sweepdb              # a file holding the URL (keeps a password off disk)
    DLRECIPE_STORAGE=postgresql+psycopg://user:pw@host/db python -m dlrecipe.train hparams_search=...

The URL rules follow the optuna CLI: a database URL (scheme://) is an RDB storage, anything
else is a journal file path. A password in the URL is a secret: only its redacted form
(user:***@host) is shown, logged or written anywhere; jobs get the real URL through
$DLRECIPE_STORAGE. Database connections time out (connect_timeout), so an unreachable or
silent server fails here, in seconds, before any trial runs.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, open_dict, read_write
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from dlrecipe.errors import ConfigError
from dlrecipe.sweep.space import override_value

ENV = "DLRECIPE_STORAGE"
STORAGE_KEY = "hydra.sweeper.storage"
HIDDEN = "***"
_QUERY_SECRET = re.compile(r"([?&](?:password|passwd|pwd)=)[^&]*", re.IGNORECASE)
_MAX_URL_FILE = 4096  # a URL file is one line; anything bigger is not one


@dataclass(frozen=True)
class StorageSpec:
    """Where a study lives: the real URL (never shown), what may be shown, and where it came from."""

    url: str
    shown: str
    source: str  # "hydra.sweeper.storage", "$DLRECIPE_STORAGE", "file <path>" or the default

    @property
    def is_journal(self) -> bool:
        return "://" not in self.url

    @property
    def secret(self) -> bool:
        return self.shown != self.url

    def scrub(self, text: str) -> str:
        """Text with this storage's password hidden (for messages that may quote the URL)."""
        text = text.replace(self.url, self.shown)
        for secret in _passwords(self.url):
            if len(secret) >= 4:  # shorter strings would mangle ordinary words
                text = text.replace(secret, HIDDEN)
        return text


def redact(url: str) -> str:
    """The URL with its password replaced by ***: safe to print, log and save."""
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    head, query = [*rest.split("?", 1), ""][:2]
    at = head.rfind("@")  # the last @ before the query: a password may itself hold @ or /
    if at > 0 and ":" in head[:at]:
        user = head[:at].split(":", 1)[0]
        head = f"{user}:{HIDDEN}{head[at:]}"
    shown = f"{scheme}://{head}" + (f"?{query}" if query or "?" in rest else "")
    return _QUERY_SECRET.sub(rf"\g<1>{HIDDEN}", shown)


def resolve_storage(value: str | None, default_journal: Path, key: str = STORAGE_KEY) -> StorageSpec:  # fmt: skip
    """The storage the user asked for: `value`, else $DLRECIPE_STORAGE, else the default journal."""
    source = key
    if value is None or str(value).strip() == "":
        value, source = os.environ.get(ENV, "").strip(), f"${ENV}"
        if not value:
            return StorageSpec(str(default_journal), str(default_journal), "the sweep directory")
    value = str(value).strip()
    if value.startswith("file:"):
        path = Path(value.removeprefix("file:").removeprefix("//")).expanduser()
        value, source = _read_url_file(path, source), f"file {path}"
    return StorageSpec(value, redact(value), source)


def job_storage(shown: str) -> StorageSpec:
    """In a job or report: the real URL behind a redacted one (from $DLRECIPE_STORAGE)."""
    from_env = os.environ.get(ENV, "").strip()
    if from_env:
        real = resolve_storage(from_env, Path("unused"), f"${ENV}")
        if real.shown == shown:
            return real
    if HIDDEN in shown:
        raise ConfigError(
            f"storage {shown} has its password hidden; give the real URL in ${ENV} "
            "(the sweeper sets it for the jobs it starts)"
        )
    return resolve_storage(shown, Path("unused"), "optuna.storage")


def hide_secret(config: DictConfig, spec: StorageSpec) -> None:
    """Keep a storage password out of what Hydra saves (.hydra/*.yaml), loggers and W&B record.

    Hydra recomposes each job from the master config's `hydra.overrides.hydra` and saves it,
    and W&B records sys.argv: both get the redacted URL. Jobs read the real one from
    $DLRECIPE_STORAGE (jobs_see).
    """
    if not spec.secret:
        return
    sys.argv = [spec.scrub(arg) for arg in sys.argv]
    with read_write(config), open_dict(config):
        if spec.source == STORAGE_KEY:  # from an override or a preset: jobs recompose from both
            config.hydra.sweeper.storage = spec.shown
            kept = [
                o
                for o in config.hydra.overrides.hydra
                if o.split("=", 1)[0].lstrip("+~") != STORAGE_KEY
            ]
            config.hydra.overrides.hydra = [*kept, f"{STORAGE_KEY}={override_value(spec.shown)}"]
        else:
            config.hydra.overrides.hydra = [spec.scrub(o) for o in config.hydra.overrides.hydra]


@contextmanager
def jobs_see(spec: StorageSpec) -> Iterator[None]:
    """The real URL for this sweep's jobs (in this process or started from it), in $DLRECIPE_STORAGE."""
    if not spec.secret:
        yield
        return
    before = os.environ.get(ENV)
    os.environ[ENV] = spec.url
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before


def make_storage(
    url: str | StorageSpec,
    *,
    connect_timeout: float = 5,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    max_retry: int | None = None,
) -> BaseStorage:
    """An Optuna storage; RDB storages get a connect timeout and, optionally, Optuna's heartbeat."""
    spec = url if isinstance(url, StorageSpec) else StorageSpec(url, redact(url), STORAGE_KEY)
    if spec.is_journal:
        path = Path(spec.url).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        # An open-lock works on NFS too, so workers on several machines can share one file.
        return JournalStorage(
            JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            extra: dict[str, Any] = {}
            if heartbeat_interval:
                # A killed worker's trial stops beating; after grace_period any worker fails it
                # and queues a retry with the same parameters (Optuna's mechanism, server clock).
                extra = dict(heartbeat_interval=int(heartbeat_interval), grace_period=int(grace_period or 2 * heartbeat_interval),
                             heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry))  # fmt: skip
            return RDBStorage(
                spec.url, engine_kwargs=_engine_kwargs(spec.url, connect_timeout), **extra
            )
    # sqlalchemy's OperationalError, a timeout, a missing driver, a bad URL
    except Exception as err:
        cause = getattr(err, "orig", None) or err  # the driver's own words, not SQLAlchemy's wrap
        reason = spec.scrub(" ".join(str(cause).split())[:200])
        where = STORAGE_KEY + ("" if spec.source == STORAGE_KEY else f" (from {spec.source})")
        raise ConfigError(
            f"{where}={spec.shown} cannot be opened ({type(err).__name__}: {reason}). Check the "
            f"server (hydra.sweeper.connect_timeout={connect_timeout:g}s), the database name, the "
            "password and the driver (pip install 'dlrecipe[postgres]' for postgresql+psycopg://)"
        ) from None  # fmt: skip


def load_study(study_name: str, shown_url: str, pruner: optuna.pruners.BasePruner | None = None, connect_timeout: float = 5) -> optuna.Study:  # fmt: skip
    """The study of a running sweep, from inside one of its jobs."""
    storage = make_storage(job_storage(shown_url), connect_timeout=connect_timeout)
    return optuna.load_study(study_name=study_name, storage=storage, pruner=pruner)


def _engine_kwargs(url: str, connect_timeout: float) -> dict[str, Any]:
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme == "sqlite":  # for SQLite this is how long to wait for a locked database
        return {"connect_args": {"timeout": connect_timeout}}
    if scheme in ("postgresql", "postgres", "mysql", "mariadb"):
        # pre_ping: a connection that sat idle through a long trial may have been dropped.
        timeout = max(1, round(connect_timeout))
        return {"connect_args": {"connect_timeout": timeout}, "pool_pre_ping": True}
    return {}


def _read_url_file(path: Path, key: str) -> str:
    """The one-line URL in a file. Its content is a secret: no message ever quotes it."""
    where = f"{key}=file:{path}"
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{where}: not a file; give a file that holds the storage URL")
        if info.st_size > _MAX_URL_FILE:
            raise ConfigError(
                f"{where}: {info.st_size} bytes is not one URL; the file must hold one line"
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{where}: no such file; write the storage URL into it (chmod 600)"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{where} cannot be read ({type(err).__name__}); check the path and its permissions") from None  # fmt: skip
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != 1 or any(c.isspace() or not c.isprintable() for c in lines[0]):
        raise ConfigError(f"{where}: the file must hold exactly one storage URL on one line")
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        import logging

        logging.getLogger(__name__).warning(
            "%s can be read by other users: chmod 600 %s", path, path
        )
    return lines[0]


def _passwords(url: str) -> list[str]:
    """The secrets in a URL (the password, also percent-decoded, and password= query values)."""
    from urllib.parse import unquote

    found: list[str] = []
    if "://" in url:
        head = url.split("://", 1)[1].split("?", 1)[0]
        at = head.rfind("@")
        if at > 0 and ":" in head[:at]:
            found.append(head[:at].split(":", 1)[1])
    found += [m.group(0).split("=", 1)[1] for m in _QUERY_SECRET.finditer(url)]
    return [s for s in {*found, *(unquote(s) for s in found)} if s]
