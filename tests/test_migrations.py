"""Schema migrations on real SQLite files: a fresh database, a pre-migration database, the model matches head."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from watcher import migrations
from watcher.errors import StoreError
from watcher.store import Store, metadata


def url(p: Path) -> str:
    return f"sqlite:///{p}"


def test_fresh_database_is_at_head(tmp_path: Path) -> None:
    Store.open(str(tmp_path / "w.db")).close()
    assert migrations.current(url(tmp_path / "w.db")) == migrations.head()


def test_head_matches_the_model(tmp_path: Path) -> None:
    """Every change to store.py's tables must come with a migration: head and the model must not differ."""
    migrations.upgrade(url(tmp_path / "w.db"))
    engine = sa.create_engine(url(tmp_path / "w.db"))
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), metadata)
    finally:
        engine.dispose()
    assert diff == [], f"store.py and the migrations disagree; write a migration for: {diff}"


def test_database_from_before_migrations_is_stamped_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    migrations.upgrade(url(path), "0001")
    con = sqlite3.connect(path)
    con.execute("drop table alembic_version")  # now it looks like a pre-migration database
    con.execute("insert into feeds (name, url, consecutive_failures, created_at) values ('f', 'u', 0, '2026-01-01')")
    con.commit()
    con.close()
    assert migrations.current(url(path)) == "legacy"
    s = Store.open(str(path))
    try:
        assert s.counts()["feeds"] == 1
    finally:
        s.close()
    assert migrations.current(url(path)) == migrations.head()


def test_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    Store.open(str(path)).close()
    con = sqlite3.connect(path)
    con.execute("update alembic_version set version_num = '9999'")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="newer than this watcher"):
        Store.open(str(path))
