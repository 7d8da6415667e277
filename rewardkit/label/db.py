"""Engines, schema migrations and transactions for the labelling database (SQLite file or PostgreSQL server).

SQLite runs in WAL mode with `synchronous=FULL` (a committed submission survives a crash of the process or the
machine) and every transaction starts with `BEGIN IMMEDIATE`, so concurrent writers queue for the lock instead
of failing half-way. PostgreSQL URLs use psycopg 3. The schema is created and upgraded by Alembic with the
migrations shipped in `rewardkit/label/migrations`; `open_database` refuses a database that is not at the newest
revision, so old code never writes into a newer schema or the other way round.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from rewardkit.errors import RewardkitError

logger = logging.getLogger("rewardkit.label")
logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines are for developers

DEFAULT_DB = "sqlite:///labels.db"
MIGRATIONS = Path(__file__).parent / "migrations"
T = TypeVar("T")


def make_engine(url: str) -> Engine:
    """An engine for `url` (`sqlite:///path.db` or `postgresql://user@host/db`), configured for safe writes."""
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise RewardkitError(f"--db {url!r} is not a database URL (expected sqlite:///labels.db or "
                             "postgresql://user:password@host/dbname)") from error
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise RewardkitError(f"--db {url!r}: name a database file (sqlite:///labels.db); an in-memory "
                                 "database would lose every label when the server stops")
        if not Path(database).expanduser().resolve().parent.is_dir():
            raise RewardkitError(f"--db {url!r}: the folder of '{database}' does not exist")
        engine = create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=20)
    raise RewardkitError(f"--db {url!r}: only SQLite (sqlite:///file.db) and PostgreSQL (postgresql://...) "
                         "databases are supported")


def _sqlite_connect(dbapi_connection, _record) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN IMMEDIATE instead of the driver's deferred BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=30000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _alembic_config(engine: Engine, connection=None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine) -> str:
    """Create or upgrade the schema to the newest migration; returns that revision."""
    from alembic import command

    with engine.begin() as connection:
        command.upgrade(_alembic_config(engine, connection), "head")
    return head_revision(engine)


def head_revision(engine: Engine) -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except OperationalError as error:
        raise RewardkitError(f"cannot open the database {engine.url!r}: {error.orig}") from error


def open_database(url: str) -> sessionmaker[Session]:
    """A session factory for an existing, up-to-date database (made by `rewardkit label init`)."""
    engine = make_engine(url)
    current, head = current_revision(engine), head_revision(engine)
    if current is None:
        raise RewardkitError(f"{url} has no labelling tables yet; create them with `rewardkit label init --db {url}`")
    if current != head:
        raise RewardkitError(f"{url} is at schema revision {current}, this rewardkit expects {head}; upgrade it "
                             f"with `rewardkit label init --db {url}` (back it up first)")
    return sessionmaker(engine, expire_on_commit=False)


def _retryable(error: DBAPIError) -> bool:
    """Lock time-outs (SQLite) and serialization failures / deadlocks (PostgreSQL): run the transaction again."""
    code = getattr(error.orig, "sqlstate", None)
    return code in ("40001", "40P01") or "database is locked" in str(error.orig)


def run_transaction(sessions: sessionmaker[Session], work: Callable[[Session], T], attempts: int = 5) -> T:
    """Run `work(session)` in one transaction: all of it is committed, or none of it (retried when the database
    asks for it)."""
    for attempt in range(attempts):
        try:
            with sessions.begin() as session:
                return work(session)
        except DBAPIError as error:
            if attempt == attempts - 1 or not _retryable(error):
                raise
            logger.debug("transaction retried after %s", error.orig)
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions.begin() as session:
        yield session
