"""Engines and sessions; schema version checks and upgrades through Alembic."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ctl.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from alembic.config import Config

# The newest migration. Every command checks the store is at this revision; reading
# it from here keeps Alembic (≈0.6 s to import and scan) out of every command's start.
# tests/unit/test_store_engine.py checks it against the migrations directory.
SCHEMA_REVISION = "0011"


def migrations_dir() -> Path:
    module = importlib.import_module("ctl.migrations")
    assert module.__file__ is not None
    return Path(module.__file__).parent


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets `ctl serve` write while CLI commands read; busy_timeout makes
    # concurrent writers wait instead of failing at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_private_sqlite(url: str) -> None:
    """Create a new SQLite store's file mode 0600 before SQLite does (it would follow the
    umask, typically world-readable): the store holds people's names and numbers. SQLite
    gives its -wal and -shm files the database file's mode."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return  # make_engine reports it
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or "uri" in parsed.query:
        return
    try:
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    except OSError:
        pass  # it exists (and keeps its mode), or SQLite will say in its own words why it cannot open it


def make_engine(url: str) -> Engine:
    create_private_sqlite(url)
    try:
        engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    except (ArgumentError, NoSuchModuleError, ValueError) as error:
        raise ConfigError(f"[database] url: cannot use {safe_url(url)!r}: {error}") from None
    except ImportError as error:
        raise ConfigError(f"[database] url: the database driver is not installed ({error.name})") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def safe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable url>"


def head_revision() -> str:
    """The newest revision in the migrations directory (imports Alembic: not for hot paths)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except OperationalError as error:
        raise StoreError(f"cannot open the store at {safe_url(str(engine.url))}: {_first_line(error)}") from None


def ensure_migrated(engine: Engine) -> None:
    current = current_revision(engine)
    if current != SCHEMA_REVISION:
        state = "is empty" if current is None else f"is at revision {current}"
        raise StoreError(f"the store at {safe_url(str(engine.url))} {state}; run `ctl db upgrade` first")


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    create_private_sqlite(url)  # Alembic opens the store with an engine of its own
    try:
        command.upgrade(alembic_config(url), revision)
    except OperationalError as error:
        raise StoreError(f"cannot upgrade the store at {safe_url(url)}: {_first_line(error)}") from None


def _first_line(error: SQLAlchemyError) -> str:
    original = getattr(error, "orig", None)
    return (str(original or error).strip().splitlines() or ["unknown error"])[0]


class Store:
    """The engine plus a session factory; `transaction()` is the unit of work."""

    def __init__(self, url: str, check_schema: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        if check_schema:
            ensure_migrated(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Every change the event stream reports is written in its own transaction (the outbox).
        from ctl.store.outbox import forget_new_calls, publish_new_calls, record_changes

        event.listen(self._sessions, "after_flush", record_changes)
        event.listen(self._sessions, "before_commit", publish_new_calls)
        event.listen(self._sessions, "after_commit", forget_new_calls)
        event.listen(self._sessions, "after_rollback", forget_new_calls)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One short transaction: commit on success, roll back on any error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except OperationalError as error:
            session.rollback()
            raise StoreError(f"store error: {_first_line(error)}") from None
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
