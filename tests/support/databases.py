"""System databases for tests: a SQLite file, or a fresh database on a real Postgres."""

from __future__ import annotations

import base64
import binascii
import os
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

POSTGRES_SERVER = os.environ.get("CREW_DURABLE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
REQUIRE_POSTGRES = os.environ.get("CREW_DURABLE_REQUIRE_POSTGRES") == "1"
BACKENDS = ["sqlite", "postgres"]


@dataclass
class Database:
    backend: str
    url: str
    name: str

    def drop(self) -> None:
        if self.backend == "postgres":
            with _admin() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def dump(self) -> str:
        """Every value stored in every table, as text, base64 payloads decoded.

        DBOS stores pickles base64-encoded, so a secret inside a pickled
        object would not show in a plain dump; each value is also decoded.
        """
        return "\n".join(reveal(value) for value in self._values())

    def _values(self) -> list[object]:
        if self.backend == "sqlite":
            with sqlite3.connect(self.url.removeprefix("sqlite:///")) as connection:
                tables = [
                    r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
                ]
                return [v for t in tables for row in connection.execute(f'SELECT * FROM "{t}"') for v in row]
        with psycopg.connect(self.url, autocommit=True) as connection:
            tables = connection.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
            ).fetchall()
            return [
                value
                for schema, table in tables
                for row in connection.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
                for value in row
            ]


def reveal(value: object) -> str:
    """``value`` as text, followed by its base64 decoding when it is base64."""
    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    try:
        decoded = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        return text
    return f"{text}\n{decoded.decode('latin-1')}"


def _admin() -> psycopg.Connection:
    return psycopg.connect(f"{POSTGRES_SERVER}/postgres", autocommit=True, connect_timeout=3)


def postgres_available() -> bool:
    try:
        with _admin():
            return True
    except psycopg.OperationalError:
        return False


def create(backend: str, directory: Path) -> Database:
    """A new, empty system database; skips (or fails in CI) when Postgres is down."""
    name = f"crew_durable_test_{uuid.uuid4().hex[:12]}"
    if backend == "sqlite":
        return Database(backend, f"sqlite:///{directory / name}.sqlite", name)
    if not postgres_available():
        message = f"Postgres is not reachable at {POSTGRES_SERVER}"
        if REQUIRE_POSTGRES:
            pytest.fail(f"{message}, and CREW_DURABLE_REQUIRE_POSTGRES=1 requires it.")
        pytest.skip(message)
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return Database(backend, f"{POSTGRES_SERVER}/{name}", name)
