"""Shared fixtures: a launched DBOS per backend (SQLite and a real Postgres)."""

from __future__ import annotations

import fcntl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from dbos import DBOS

from crew_durable import dbos_config
from tests.support import databases, ledger
from tests.support.databases import Database


@pytest.fixture(scope="session", params=databases.BACKENDS)
def launched(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """DBOS launched in this process on a fresh system database of each backend."""
    database = databases.create(request.param, tmp_path_factory.mktemp(request.param))
    DBOS(config=dbos_config("crew_durable_tests", database.url))
    DBOS.launch()
    try:
        yield database
    finally:
        DBOS.destroy(destroy_registry=False)
        database.drop()


@pytest.fixture(params=databases.BACKENDS)
def system_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh system database of each backend, for tests that run their own processes."""
    database = databases.create(request.param, tmp_path)
    try:
        yield database
    finally:
        database.drop()


@pytest.fixture
def fixed_ports() -> Iterator[None]:
    """Hold the local ports live fake servers listen on (the cassettes' 8765, the example's 8766).

    Tests that serve on them take turns, also across pytest-xdist workers.
    """
    with open(Path(tempfile.gettempdir()) / "crew_durable_fixed_ports.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
def side_effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The ledger file tools append to, one line per real execution."""
    path = tmp_path / "ledger.jsonl"
    monkeypatch.setenv(ledger.ENV, str(path))
    return path
