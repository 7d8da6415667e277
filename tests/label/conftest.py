"""Fixtures for the labelling app: a database per test on SQLite and on a real PostgreSQL server (started here
from Debian's `postgresql` binaries when they are installed), and the app served by uvicorn on loopback."""

from __future__ import annotations

import os
import uuid

import pytest

from rewardkit.label.app import AppConfig, create_app
from rewardkit.label.db import make_engine, upgrade
from rewardkit.label.pgserver import create_database, drop_database, postgres_binaries, temporary_postgres
from rewardkit.label.store import LabelStore, ProjectSettings, parse_item
from rewardkit.serving.asgi import BackgroundAsgiServer
from rewardkit.serving.config import HttpSettings

PASSWORD = "correct horse battery"
# In CI (CI=true) a missing server or browser fails the tests instead of skipping them: .ci/run installs both.
REQUIRED = os.environ.get("CI", "").lower() in ("true", "1")


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server on 127.0.0.1 for this test session; yields its base URL."""
    if postgres_binaries() is None:
        if REQUIRED:
            pytest.fail("PostgreSQL is not installed (CI=true; .ci/system-packages.sh installs it)")
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    with temporary_postgres() as base:
        yield base


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty database: a SQLite file, or a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'labels.db'}"
        return
    base = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield create_database(base, name)
    drop_database(base, name)


@pytest.fixture
def store(db_url) -> LabelStore:
    from sqlalchemy.orm import sessionmaker

    engine = make_engine(db_url)
    upgrade(engine)
    yield LabelStore(sessionmaker(engine, expire_on_commit=False))
    engine.dispose()


def make_items(n: int, k: int = 4, prefix: str = "q") -> list:
    """n items with K distinct responses each; response 0 is the 'best' one by construction."""
    return [parse_item({"id": f"{prefix}{i}", "prompt": f"Question {i}: what is {i} + {i}?",
                        "responses": [f"{2 * i}", f"{2 * i} or so", f"{2 * i + 1}", f"maybe {i}", "no idea",
                                      f"{i}{i}", "ask later", "it depends", "zero"][:k]}, f"test item {i}")
            for i in range(n)]


def add_project(store: LabelStore, name: str = "demo", n: int = 10, k: int = 4, **settings) -> None:
    store.create_project(ProjectSettings(name, **settings))
    store.import_items(name, make_items(n, k))


@pytest.fixture
def serve():
    """serve(store, **AppConfig fields) -> base URL; every server started is stopped after the test."""
    servers: list[BackgroundAsgiServer] = []

    def start(store: LabelStore, **config) -> str:
        app = create_app(store, AppConfig(**config))
        servers.append(BackgroundAsgiServer(app, HttpSettings(port=0)).start())
        return servers[-1].url

    yield start
    for server in servers:
        server.stop()
