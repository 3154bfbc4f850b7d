"""Optuna storages from one string: a journal file (default, no server), SQLite or PostgreSQL.

    hydra.sweeper.storage=null                                # <sweep dir>/study.journal
    hydra.sweeper.storage=sqlite:///outputs/sweeps.db
    hydra.sweeper.storage=postgresql+psycopg://user@host/db   # many machines, one study

The URL rules follow the optuna CLI: a database URL (scheme://) is an RDB storage, anything
else is a journal file path. An unreachable database fails here, before any trial runs.
"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from dlrecipe.errors import ConfigError


def make_storage(url: str, heartbeat_interval: int | None = None) -> BaseStorage:
    if "://" not in url:
        path = Path(url).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        # An open-lock works on NFS too, so workers on several machines can share one file.
        return JournalStorage(
            JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
        )
    try:
        extra = {"heartbeat_interval": heartbeat_interval} if heartbeat_interval else {}
        return RDBStorage(url, **extra)
    except Exception as err:  # sqlalchemy's OperationalError, a missing driver, a bad URL
        raise ConfigError(
            f"hydra.sweeper.storage={_redact(url)!r} cannot be opened ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]}). Check the server, the database name and the "
            "driver (pip install 'dlrecipe[postgres]' for postgresql+psycopg://)"
        ) from err


def load_study(
    study_name: str, url: str, pruner: optuna.pruners.BasePruner | None = None
) -> optuna.Study:
    return optuna.load_study(study_name=study_name, storage=make_storage(url), pruner=pruner)


def _redact(url: str) -> str:
    """Hide a password in error messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}" if ":" in creds else url
    return url
