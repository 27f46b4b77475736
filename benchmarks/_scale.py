"""What the scale benchmarks share: databases, a fake model, byte and statement counts, results.

Each scale benchmark (storage, depth, concurrency, peer, floor) runs real
SQLite files and real Postgres databases (throwaway ones, dropped after),
against the fake OpenAI server in a process of its own, on a port of its
own so that it runs beside the test suite.
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import overhead  # sets crewAI's quiet environment first  # isort: skip

import psycopg
import sqlalchemy as sa
from crewai import LLM, Agent
from crewai.tools import tool
from dbos import DBOS

from tools.fake_openai import tool_call

RESULTS = overhead.RESULTS
PORT_ENV = "CREW_DURABLE_SCALE_PORT"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


PORT = int(os.environ.get(PORT_ENV) or _free_port())
os.environ[PORT_ENV] = str(PORT)  # subprocesses talk to the same fake
RESULT_CHARS = 200
"""Characters of each tool result: the conversation grows by about this much per completion."""


@tool
def lookup(key: int) -> str:
    """Look a key up (no side effect, no step)."""
    return f"value-{key}:" + "x" * RESULT_CHARS


def llm() -> LLM:
    return LLM(model="gpt-4o-mini", base_url=f"http://127.0.0.1:{PORT}/v1", api_key="sk-benchmark")


def agent(role: str = "Looker", **settings: Any) -> Agent:
    return Agent(role=role, goal="Look keys up", backstory="Fast.", tools=[lookup], llm=llm(), **settings)


def brain_for(completions: int, latency: float = 0.0) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A model that calls ``lookup`` until the run has made ``completions`` completions, then answers."""

    def brain(body: dict[str, Any]) -> dict[str, Any]:
        if latency:
            time.sleep(latency)
        done = sum(1 for m in body["messages"] if m["role"] == "tool")
        if done < completions - 1:
            return {"tool_calls": [tool_call("lookup", {"key": done}, f"call_{done}")]}
        return {"content": f"done after {done} lookups"}

    return brain


_WANTED = re.compile(r"look up (\d+) keys", re.IGNORECASE)


def task_brain(body: dict[str, Any], latency: float = 0.0) -> dict[str, Any]:
    """Call ``lookup`` until the run has made the completions its task asks for ("look up N keys")."""
    if latency:
        time.sleep(latency)
    user = next(str(m["content"]) for m in body["messages"] if m["role"] == "user")
    match = _WANTED.search(user)
    wanted = int(match.group(1)) if match else 2
    done = sum(1 for m in body["messages"] if m["role"] == "tool")
    if done < wanted - 1:
        return {"tool_calls": [tool_call("lookup", {"key": done}, f"call_{done}")]}
    return {"content": f"done after {done} lookups"}


database = overhead._database
"""``(url, drop)`` of a new, empty system database: a SQLite file, or a fresh Postgres database."""


def payload_bytes(url: str) -> dict[str, int]:
    """Bytes of data per system-database table: SQLite's stored lengths, Postgres's column sizes."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            tables = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            sizes = {}
            for table in tables:
                columns = [r[1] for r in connection.execute(f'PRAGMA table_info("{table}")')]
                if not columns:
                    continue
                total = " + ".join(f'COALESCE(LENGTH("{c}"), 0)' for c in columns)
                sizes[table] = int(
                    connection.execute(f'SELECT COALESCE(SUM({total}), 0) FROM "{table}"').fetchone()[0]
                )
            return sizes
    with psycopg.connect(url, autocommit=True) as connection:
        tables = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'dbos'"
        ).fetchall()
        return {
            t: int(
                connection.execute(
                    f'SELECT COALESCE(SUM(pg_column_size(r.*)), 0) FROM dbos."{t}" r'
                ).fetchone()[0]
            )
            for (t,) in tables
        }


def disk_bytes(url: str) -> int:
    """The system database on disk: the SQLite file (log checkpointed first), or pg_database_size."""
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        with sqlite3.connect(path) as connection:  # the log holds recent commits until a checkpoint
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    with psycopg.connect(url, autocommit=True) as connection:
        return int(connection.execute("SELECT pg_database_size(current_database())").fetchone()[0])


def step_rows(url: str, workflow_id: str) -> list[tuple[int, str, int]]:
    """``(function_id, function_name, output bytes)`` of a workflow's recorded operations."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            return [
                (int(r[0]), str(r[1]), int(r[2] or 0))
                for r in connection.execute(
                    "SELECT function_id, function_name, LENGTH(output) FROM operation_outputs "
                    "WHERE workflow_uuid = ? ORDER BY function_id",
                    (workflow_id,),
                )
            ]
    with psycopg.connect(url, autocommit=True) as connection:
        return [
            (int(r[0]), str(r[1]), int(r[2] or 0))
            for r in connection.execute(
                "SELECT function_id, function_name, octet_length(output) FROM dbos.operation_outputs "
                "WHERE workflow_uuid = %s ORDER BY function_id",
                (workflow_id,),
            )
        ]


def workflow_record_bytes(url: str, workflow_id: str) -> dict[str, int]:
    """Bytes of a workflow's own inputs and output (DBOS's workflow_input and workflow_output rows)."""
    sqlite = url.startswith("sqlite")
    size, schema, mark = ("LENGTH", "", "?") if sqlite else ("octet_length", "dbos.", "%s")
    sizes = {}
    for kind, table in (("inputs", "workflow_input"), ("output", "workflow_output")):
        column = "inputs" if kind == "inputs" else "output"
        query = f"SELECT {size}({column}) FROM {schema}{table} WHERE workflow_uuid = {mark}"
        if sqlite:
            with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
                row = connection.execute(query, (workflow_id,)).fetchone()
        else:
            with psycopg.connect(url, autocommit=True) as connection:
                row = connection.execute(query, (workflow_id,)).fetchone()
        sizes[kind] = int(row[0] or 0) if row else 0
    return sizes


_BACKGROUND = (
    "queue-worker",
    "queue_thread",
    "scheduler",
    "notification",
    "conductor",
    "dbos-admin",
    "version",
)
"""DBOS's own background threads (queue polling, schedules...): not the work being counted."""


def _foreground() -> bool:
    return not threading.current_thread().name.lower().startswith(_BACKGROUND)


class StatementCounter:
    """Counts what an engine does for the work measured: statements, pool checkouts, commits.

    From SQLAlchemy's events; DBOS's background threads (queue polling and
    the like, whose work depends on time, not on steps) are left out.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.counts = {"statements": 0, "checkouts": 0, "commits": 0}
        self.statements: list[str] = []
        self.keep = False
        self._lock = threading.Lock()
        sa.event.listen(engine, "before_cursor_execute", self._statement)
        sa.event.listen(engine.pool, "checkout", self._checkout)
        sa.event.listen(engine, "commit", self._commit)

    def _statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not _foreground():
            return
        with self._lock:
            self.counts["statements"] += 1
            if self.keep:
                thread = threading.current_thread().name
                self.statements.append(f"[{thread}] " + " ".join(statement.split())[:90])

    def _checkout(self, *args: Any) -> None:
        if not _foreground():
            return
        with self._lock:
            self.counts["checkouts"] += 1

    def _commit(self, *args: Any) -> None:
        if not _foreground():
            return
        with self._lock:
            self.counts["commits"] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._statement)
        sa.event.remove(self.engine.pool, "checkout", self._checkout)
        sa.event.remove(self.engine, "commit", self._commit)


def system_engine() -> sa.Engine:
    """The launched DBOS's system-database engine."""
    from crew_durable._dbos_internals import _system_database

    engine: sa.Engine = _system_database().engine
    return engine


@contextmanager
def launched(url: str, **settings: Any) -> Iterator[None]:
    """DBOS configured by crew_durable on ``url`` and launched, destroyed after."""
    from crew_durable import dbos_config

    DBOS(config=dbos_config("crew_durable_scale", url, log_level="WARNING", **settings))
    DBOS.launch()
    try:
        yield
    finally:
        DBOS.destroy(destroy_registry=False)


def machine() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "shared": "a 2-core VM other sessions ran tests and benchmarks on at the same time",
    }


def write(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    text = json.dumps({"machine": machine(), **payload}, indent=2)
    out.write_text(text)
    (RESULTS / f"{name}-latest.json").write_text(text)
    return out


def print_table(title: str, headers: list[str], rows: list[list[Any]]) -> None:
    """A table for people: rich's when it is installed, markdown otherwise."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover
        print(f"\n{title}\n| " + " | ".join(headers) + " |\n|" + "---|" * len(headers))
        for row in rows:
            print("| " + " | ".join(str(c) for c in row) + " |")
        return
    table = Table(title=title, title_justify="left")
    for header in headers:
        table.add_column(header)
    for row in rows:
        table.add_row(*(str(c) for c in row))
    Console(width=200).print(table)


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
