"""Real broker servers for the end-to-end tests, each on a free loopback port.

In CI (``CI=true``) a missing server binary or Python package fails the test; locally it
skips with the command that installs it.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

POSTGRES_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_binary(name: str, install: str, search: list[Path] | None = None) -> str:
    """Return the path of ``name``; fail in CI, skip locally, when it is missing."""
    found = shutil.which(name) or next(
        (str(d / name) for d in search or [] if (d / name).exists()), None
    )
    if found:
        return found
    unavailable(f"{name} is not installed; install it with: {install}")


def require_module(name: str, install: str) -> None:
    """Fail in CI, skip locally, when the Python package ``name`` is missing."""
    if importlib.util.find_spec(name) is None:
        unavailable(f"{name} is not installed; install it with: {install}")


def unavailable(message: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def wait_until(ready: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start within {timeout}s")
        time.sleep(0.1)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Server:
    host: str
    port: int


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Server]:
    """A ``redis-server`` on a free loopback port (no persistence)."""
    binary = require_binary("redis-server", "apt-get install redis-server")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: port_open(port), "redis-server")
        yield Server("127.0.0.1", port)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def redis_db(redis_server: Server) -> Iterator[int]:
    """A flushed Redis database number for one test."""
    import redis

    client = redis.Redis(host=redis_server.host, port=redis_server.port, db=0)
    client.flushall()
    yield 0
    client.flushall()


@dataclass
class Postgres(Server):
    user: str

    def create_database(self, name: str) -> dict[str, object]:
        """Create database ``name`` and return a Django ``DATABASES`` entry for it."""
        import psycopg

        with psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
            connection.execute(f'CREATE DATABASE "{name}"')
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": self.user,
            "HOST": self.host,
            "PORT": str(self.port),
        }


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """A PostgreSQL server in a temporary directory, trusting local connections."""
    install = "apt-get install postgresql"
    initdb = require_binary("initdb", install, POSTGRES_BIN_DIRS)
    postgres = require_binary("postgres", install, POSTGRES_BIN_DIRS)
    data = Path(tempfile.mkdtemp(prefix="pgdata-"))
    # PostgreSQL refuses to run as root: run it as the system's postgres user.
    run_as: list[str] = []
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(data, account.pw_uid, account.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*run_as, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    port = free_port()
    process = subprocess.Popen(
        [
            *run_as,
            postgres,
            "-D",
            str(data),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-k",
            str(data),
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: port_open(port), "postgres")
        # The port opens before the server accepts connections ("the database system is
        # starting up").
        wait_until(lambda: _accepts_connections(port), "postgres", timeout=60)
        yield Postgres("127.0.0.1", port, "postgres")
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


def _accepts_connections(port: int) -> bool:
    import psycopg

    try:
        psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres").close()
    except psycopg.OperationalError:
        return False
    return True


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Server]:
    """moto's AWS mock in server mode on loopback (for the SQS broker)."""
    require_module("moto", "pip install 'moto[server]'")
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield Server("127.0.0.1", port)
    finally:
        server.stop()
