"""Schema migrations (Alembic), run automatically when the store opens and by ``watcher db upgrade``.

SQLite cannot ALTER most things, so migrations use Alembic's batch mode (copy, recreate, move), and they run
with foreign keys OFF: with them on, recreating a parent table in batch mode cascade-deleted every child row
(measured, LIBRARY-NOTES §4; the Alembic batch docs say the same). After the migration, ``PRAGMA
foreign_key_check`` must come back empty, or the upgrade is reported as failed.

A database created before migrations existed (tables present, no ``alembic_version``) is stamped with the
first revision, whose schema it has, and upgraded from there.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event

from ..errors import StoreError

HERE = Path(__file__).resolve().parent
FIRST = "0001"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    return cfg


def head() -> str:
    """The newest revision this watcher knows."""
    rev = ScriptDirectory.from_config(_config()).get_current_head()
    assert rev is not None
    return rev


def is_known(rev: str) -> bool:
    """True when `rev` is a revision of this watcher (False: the database is newer than the code)."""
    try:
        return ScriptDirectory.from_config(_config()).get_revision(rev) is not None
    except Exception:  # alembic raises its own "no such revision" errors
        return False


def _migration_engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=10000")
            cur.execute("PRAGMA foreign_keys=OFF")  # batch migrations recreate tables: see the module docstring
            cur.close()

    return engine


def current(url: str) -> str | None:
    """The database's revision; None for an empty database."""
    engine = _migration_engine(url)
    try:
        with engine.connect() as conn:
            rev = MigrationContext.configure(conn).get_current_revision()
            if rev is None and sa.inspect(conn).has_table("feeds"):
                return "legacy"
            return rev
    finally:
        engine.dispose()


def upgrade(url: str, target: str = "head") -> tuple[str | None, str]:
    """Bring the database at `url` to `target`; returns (revision before, revision after)."""
    engine = _migration_engine(url)
    cfg = _config()
    try:
        with engine.begin() as conn:
            ctx = MigrationContext.configure(conn)
            before = ctx.get_current_revision()
            if before is None and sa.inspect(conn).has_table("feeds"):
                cfg.attributes["connection"] = conn
                command.stamp(cfg, FIRST)  # created by create_all before migrations existed
                before = FIRST
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, target)
            after = MigrationContext.configure(conn).get_current_revision()
            if engine.dialect.name == "sqlite":
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise StoreError(
                        f"migration left {len(broken)} rows with broken references; nothing was "
                        "committed: restore from your backup and report this"
                    )
        return before, after or target
    except sa.exc.SQLAlchemyError as e:
        raise StoreError(f"database migration failed: {getattr(e, 'orig', e)}") from e
    finally:
        engine.dispose()
