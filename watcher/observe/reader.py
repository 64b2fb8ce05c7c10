"""A read-only database engine for reports, /metrics and /healthz.

The Store's engine starts every transaction with ``BEGIN IMMEDIATE`` (so that a write never fails on a busy
file), which means even its reads take SQLite's write lock: a report or a scrape would queue behind the
daemon's writes and hold them up. This engine starts plain (deferred) transactions instead, with
``PRAGMA query_only``: in WAL mode such a reader sees one consistent snapshot and neither waits for the writer
nor delays it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine


def reader_engine(url: sa.URL | str) -> Engine:
    """An engine on the same database as `url` whose connections can only read."""
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # the begin event below emits BEGIN itself
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=10000")
            cur.execute("PRAGMA query_only=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN")  # deferred: a read snapshot, no write lock

    return engine
