from __future__ import annotations

from ctl.store.engine import SCHEMA_REVISION, head_revision


def test_the_schema_revision_constant_is_the_newest_migration() -> None:
    # Commands check the store against SCHEMA_REVISION without loading Alembic;
    # a new migration must bump it.
    assert SCHEMA_REVISION == head_revision()
