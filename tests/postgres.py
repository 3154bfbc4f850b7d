"""A real PostgreSQL server for tests: started by the fixture, on a free port, removed afterwards.

    python -m pytest tests/test_sweep_faults.py -k password -q     # uses postgres_password_url

Needs Debian's postgresql package (`make test` installs it when absent). initdb refuses to run
as root, so as root the server runs as the postgres user. The superuser `postgres` is trusted
over TCP (the fixtures administer with it); every other role must give its password
(scram-sha-256), so tests of secret handling talk to a server that really checks one.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator

import pytest


def _bindir() -> str | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    return os.path.dirname(found[-1]) if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[tuple[str, int]]:
    bindir = _bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; `make test` installs it with apt-get")
        pytest.skip("PostgreSQL is not installed (make test installs it)")
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    base = tempfile.mkdtemp(prefix="pytest-pg-")
    if as_pg:
        shutil.chown(base, "postgres", "postgres")
    data, port = os.path.join(base, "data"), _free_port()
    subprocess.run([*as_pg, f"{bindir}/initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"],
                   check=True, capture_output=True)  # fmt: skip
    # Only the fixtures' superuser is trusted; any other role proves its password (TCP only).
    hba = os.path.join(data, "pg_hba.conf")
    with open(hba, "w") as handle:
        handle.write("local all all trust\nhost all postgres 127.0.0.1/32 trust\n"
                     "host all all 127.0.0.1/32 scram-sha-256\n")  # fmt: skip
    if as_pg:
        shutil.chown(hba, "postgres", "postgres")
    options = f"-p {port} -h 127.0.0.1 -k {base} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    subprocess.run([*as_pg, f"{bindir}/pg_ctl", "-D", data, "-l", f"{base}/server.log", "-w", "-t", "60", "-o", options, "start"],
                   check=True, capture_output=True)  # fmt: skip
    try:
        yield "127.0.0.1", port
    finally:
        subprocess.run(
            [*as_pg, f"{bindir}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server) -> Iterator[str]:
    """A fresh database on the session's server, dropped after the test."""
    import psycopg

    host, port = postgres_server
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(
        host=host, port=port, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield f"postgresql+psycopg://postgres@{host}:{port}/{name}"
    with psycopg.connect(
        host=host, port=port, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def postgres_password_role(postgres_server) -> tuple[str, str]:
    """(user, password) of a role the server admits only with its password."""
    import psycopg

    host, port = postgres_server
    user, password = "sweeper", "pw-" + secrets.token_urlsafe(18)
    with psycopg.connect(
        host=host, port=port, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
    return user, password


@pytest.fixture
def postgres_password_url(postgres_server, postgres_password_role) -> Iterator[str]:
    """A fresh database owned by the password role: postgresql+psycopg://sweeper:<pw>@host:port/db."""
    import psycopg

    host, port = postgres_server
    user, password = postgres_password_role
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(
        host=host, port=port, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f"CREATE DATABASE {name} OWNER {user}")
    yield f"postgresql+psycopg://{user}:{password}@{host}:{port}/{name}"
    with psycopg.connect(
        host=host, port=port, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
