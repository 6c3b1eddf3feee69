"""The embedded PostgreSQL used when ``NIDAAN_DATABASE_URL`` is unset.

pgserver ships PostgreSQL binaries in a wheel; the cluster lives under the data directory,
so the next start finds the data where the last one left it. The server stops when the
last process that started or attached to it exits.
"""

from __future__ import annotations

import json
import logging
import threading
import warnings
from pathlib import Path
from typing import Any

DATABASE_NAME = "nidaan"
#: The role the embedded server's migrations run as (the cluster's bootstrap superuser,
#: owner of the schema) and the role the application connects as (no superuser, owns
#: nothing, so it cannot disable the audit triggers).
OWNER_ROLE = "postgres"
APP_ROLE = "nidaan_app"

_lock = threading.Lock()
_servers: dict[Path, Any] = {}


class EmbeddedDatabaseMissing(RuntimeError):
    """There is no embedded cluster (or no Nidaan database in it) and we may not create one."""

    def __init__(self, pgdata: Path, what: str) -> None:
        super().__init__(f"{what} at {pgdata}")
        self.pgdata = pgdata
        self.what = what


def cluster_exists(pgdata: Path) -> bool:
    """Whether ``pgdata`` holds an initialised PostgreSQL cluster."""
    return (pgdata / "PG_VERSION").is_file()


def embedded_server(pgdata: Path, *, create: bool = True) -> Any:
    """Start (or attach to) the embedded server for ``pgdata`` and return its handle.

    With ``create=False`` a missing cluster raises ``EmbeddedDatabaseMissing`` instead of
    being initialised (read-only commands must not make an empty one beside the real one).
    """
    if not create and not cluster_exists(pgdata):
        raise EmbeddedDatabaseMissing(pgdata, "no embedded PostgreSQL cluster")
    with warnings.catch_warnings():
        # platformdirs warns about XDG_RUNTIME_DIR on servers without a login session.
        warnings.simplefilter("ignore")
        import pgserver  # imported lazily: a process on an external database never needs it

    # pgserver logs every command it runs at INFO; keep our console readable.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    with _lock:
        if pgdata not in _servers:
            pgdata.mkdir(parents=True, exist_ok=True)
            _forget_dead_handles(pgdata)
            _servers[pgdata] = pgserver.get_server(pgdata, cleanup_mode="stop")
        return _servers[pgdata]


def embedded_database_url(
    pgdata: Path, database: str = DATABASE_NAME, *, role: str = APP_ROLE, create: bool = True
) -> str:
    """Return a psycopg URL for ``database`` on the embedded server as ``role``, creating
    the database and the application role if missing (``create=False``: raise
    ``EmbeddedDatabaseMissing`` instead of creating a cluster or database)."""
    if not database.isidentifier() or not role.isidentifier():
        raise ValueError(f"Unsupported database or role name {database!r}, {role!r}")
    server = embedded_server(pgdata, create=create)
    # psql takes no bind parameters; the names were checked to be plain identifiers above.
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")  # noqa: S608
    if "(1 row)" not in exists:
        if not create:
            raise EmbeddedDatabaseMissing(pgdata, f"no database {database!r} in the cluster")
        server.psql(f'CREATE DATABASE "{database}";')
    if role != OWNER_ROLE:
        # Local socket connections are trusted inside the data directory: no password.
        server.psql(
            f"DO $$ BEGIN CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
            "NOREPLICATION NOBYPASSRLS; EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
        )
    url = to_psycopg_url(server.get_uri(database))
    return url.replace(f"://{OWNER_ROLE}:@", f"://{role}:@", 1)


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop pids of processes that died without cleaning up (kill -9, power cut).

    pgserver stops the server when the last registered process exits; a stale pid left in
    its list would otherwise keep the server running forever after.
    """
    import psutil

    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text())
    except ValueError:
        pids = []
    alive = [pid for pid in pids if psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def stop_embedded_servers() -> list[str]:
    """Let go of every embedded server this process attached to; each stops when no other
    Nidaan process uses it. Returns one line per server saying what happened."""
    import psutil

    said = []
    with _lock:
        for pgdata, server in _servers.items():
            server.cleanup()
            try:
                pid: int | None = int((pgdata / "postmaster.pid").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pid = None  # removed by a clean shutdown
            if pid is not None and psutil.pid_exists(pid):
                said.append(
                    f"Embedded database in {pgdata} left running for other Nidaan processes."
                )
            else:
                said.append(f"Embedded database in {pgdata} stopped.")
        _servers.clear()
    return said


def to_psycopg_url(url: str) -> str:
    """Normalise a PostgreSQL URL to SQLAlchemy's psycopg 3 dialect."""
    for prefix in ("postgresql+psycopg2://", "postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
