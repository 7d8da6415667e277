"""Fixtures for the labelling app: a database per test on SQLite and on a real PostgreSQL server (started here
from Debian's `postgresql` binaries when they are installed), and the app served by uvicorn on loopback."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from rewardkit.label.app import AppConfig, create_app
from rewardkit.label.db import make_engine, upgrade
from rewardkit.label.server import ServerThread
from rewardkit.label.store import LabelStore, ProjectSettings, parse_item

PASSWORD = "correct horse battery"
# In CI (CI=true) a missing server or browser fails the tests instead of skipping them: .ci/run installs both.
REQUIRED = os.environ.get("CI", "").lower() in ("true", "1")


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[-1:]), None)
    return Path(found).resolve().parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server on 127.0.0.1 for this test session; yields its base URL."""
    binaries = _postgres_bin()
    if binaries is None:
        if REQUIRED:
            pytest.fail("PostgreSQL is not installed (CI=true; .ci/system-packages.sh installs it)")
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    data = Path(tempfile.mkdtemp(prefix="rewardkit-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as Debian's postgres user
        shutil.chown(data, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    subprocess.run([*run_as, str(binaries / "initdb"), "-D", str(data / "db"), "-U", "postgres", "--auth=trust",
                    "--no-sync", "-E", "UTF8"], check=True, capture_output=True)
    # fsync off: this server only has to survive its clients (and our app) crashing, not the machine.
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c fsync=off -c max_connections=200"
    subprocess.run([*run_as, str(binaries / "pg_ctl"), "-D", str(data / "db"), "-o", options, "-l",
                    str(data / "log"), "-w", "-t", "60", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*run_as, str(binaries / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty database: a SQLite file, or a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'labels.db'}"
        return
    import psycopg

    base = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin_url = base.replace("postgresql+psycopg", "postgresql") + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    yield f"{base}/{name}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


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
    servers: list[ServerThread] = []

    def start(store: LabelStore, **config) -> str:
        servers.append(ServerThread(create_app(store, AppConfig(**config))))
        return servers[-1].url

    yield start
    for server in servers:
        server.stop()
