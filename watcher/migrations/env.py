"""Alembic environment: migrations run on the connection watcher hands over (see __init__.upgrade)."""

from __future__ import annotations

from alembic import context

from watcher.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` run by hand: not supported, use `watcher db upgrade`
    raise SystemExit("run migrations with `watcher db upgrade`")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
