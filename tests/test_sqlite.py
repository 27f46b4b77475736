"""An SQLite system database runs in SQLite's write-ahead-log mode, and a SIGKILL loses nothing committed."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from crew_durable import dbos_config
from crew_durable._sqlite import WriteAheadLogConnection
from tests.support import ledger
from tests.support.databases import create
from tests.support.processes import Harness, run_python


def _journal_mode(path: Path) -> str:
    with sqlite3.connect(path) as connection:
        return str(connection.execute("PRAGMA journal_mode").fetchone()[0])


def test_steps_committed_to_the_write_ahead_log_survive_a_sigkill(tmp_path: Path) -> None:
    database = create("sqlite", tmp_path)
    path = Path(database.url.removeprefix("sqlite:///"))
    harness = Harness(database, tmp_path)
    workflow_id = f"task-{uuid.uuid4()}"

    harness.run_until_killed("calculator", "execute_task", workflow_id, pause_at_request=2)
    # Killed: what it committed is in the log beside the file, not yet in the file. Nothing opens
    # the database before the recovering process does (a connection's close would checkpoint it).
    assert Path(f"{path}-wal").stat().st_size > 0
    with path.open("rb") as header:
        assert header.read(20)[18:20] == b"\x02\x02"  # SQLite's file header: write-ahead log
    assert ledger.count(harness.ledger, "multiplier") == 1

    report = harness.run("recover", "calculator", "execute_task", workflow_id)
    assert report["result"] == "17"
    assert report["steps"] == ["calculator.llm", "multiplier", "calculator.llm", "calculator.llm"]
    assert harness.requests() == 3 + 1  # the uninterrupted 3, and the one in flight at the kill
    assert ledger.count(harness.ledger, "multiplier") == 1


def test_the_first_connection_switches_a_database_and_later_ones_keep_it(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite"
    sqlite3.connect(path).execute("CREATE TABLE t (x INTEGER)").connection.close()
    assert _journal_mode(path) == "delete"  # SQLite's default, DBOS's too
    switched = sqlite3.connect(path, factory=WriteAheadLogConnection)
    assert switched.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: each commit synced
    switched.close()
    assert _journal_mode(path) == "wal"  # a plain connection (a CrewClient's) finds it so
    memory = sqlite3.connect(":memory:", factory=WriteAheadLogConnection)
    assert memory.execute("PRAGMA journal_mode").fetchone()[0] == "memory"  # no log, no error


def test_the_config_asks_for_it_only_for_sqlite_files_and_keeps_the_users_engine_settings() -> None:
    wal = dbos_config("app", "sqlite:///app.sqlite")
    assert wal["db_engine_kwargs"]["connect_args"]["factory"] is WriteAheadLogConnection  # type: ignore[typeddict-item]
    mine = dbos_config(
        "app", "sqlite:///app.sqlite", db_engine_kwargs={"pool_size": 5, "connect_args": {"timeout": 9}}
    )
    assert mine["db_engine_kwargs"] == {  # type: ignore[typeddict-item]
        "pool_size": 5,
        "connect_args": {"timeout": 9, "factory": WriteAheadLogConnection},
    }
    assert "db_engine_kwargs" not in dbos_config("app", "sqlite:///app.sqlite", sqlite_wal=False)
    assert "db_engine_kwargs" not in dbos_config("app", "postgresql://postgres@127.0.0.1:5432/app")
    assert "db_engine_kwargs" not in dbos_config("app", "sqlite://")  # in memory


@pytest.mark.parametrize("sqlite_wal, mode", [(True, "wal"), (False, "delete")])
def test_a_launched_process_leaves_the_database_in_the_mode_asked(
    tmp_path: Path, sqlite_wal: bool, mode: str
) -> None:
    path = tmp_path / "app.sqlite"
    script = (
        "from dbos import DBOS\n"
        "from crew_durable import dbos_config\n"
        f"DBOS(config=dbos_config('app', 'sqlite:///{path}', sqlite_wal={sqlite_wal}))\n"
        "DBOS.launch()\n"
        "DBOS.destroy()\n"
    )
    run_python(script)
    assert _journal_mode(path) == mode
