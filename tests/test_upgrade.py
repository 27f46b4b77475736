"""Runs an older release left pending recover under this code, or are refused clearly.

``tests/fixtures/upgrade-r<format>.sqlite`` are system databases made by
earlier code (``python -m tools.make_upgrade_fixture``), each holding runs
killed mid-flight; ``.json`` beside each says what ran before the kill and
what the uninterrupted run returns, records and does. Like Temporal's
``Replayer`` over stored histories, each test copies a fixture, recovers a
run under the current code in a fresh process and checks that it finished
as the uninterrupted run did, running only what had not finished: no
finished completion requested again (step bodies counted per LLM; the app's
cassette refuses any request the uninterrupted run did not make), no
finished tool's side effect again (the ledger).

A release that changes the record format adds a fixture and keeps the old
ones: it must recover their runs, or refuse them with a ``RecordFormatError``
naming both formats, and change these tests to say which.
"""

from __future__ import annotations

import base64
import json
import pickle
import shutil
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from crew_durable import CrewClient, RecordFormatError
from crew_durable._config import APPLICATION_VERSION
from crew_durable._protocol import FORMAT
from crew_durable._serialization import OLDEST_READABLE_FORMAT, value_from_json, value_to_json
from crew_durable.testing import CrashTestError, RunReport
from tests.support import ledger
from tests.support.processes import run_python
from tools.make_upgrade_fixture import fixture_tester, ledger_counts

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("upgrade-r*.sqlite"))
RUNS = [
    (fixture, run)
    for fixture in FIXTURES
    for run in json.loads(fixture.with_suffix(".json").read_text())["runs"]
]


def essentials(output: Any) -> Any:
    """What a run returned, without the record's own bookkeeping (format stamps)."""
    if not (isinstance(output, dict) and "raw" in output):
        return output
    pydantic = output.get("pydantic")
    return {
        "raw": output["raw"],
        "pydantic": pydantic["value"] if pydantic else None,
        "json_dict": output.get("json_dict"),
        "tasks": [task["raw"] for task in output.get("tasks_output", [])],
        "token_usage": output.get("token_usage"),
    }


def _copy(fixture: Path, directory: Path) -> str:
    database = directory / "system.sqlite"
    shutil.copyfile(fixture, database)
    return f"sqlite:///{database}"


def _recover(url: str, directory: Path, run: dict[str, Any], check: bool = True) -> RunReport:
    """Recover one run of the fixture in a fresh process (launched under the run's executor id),
    its app's completions served from the app's cassette: a request that differs from the
    uninterrupted run's fails."""
    ledger_path = directory / "ledger.jsonl"
    with fixture_tester(
        url, directory, ledger_path, run["target"], executor_id=run["workflow_id"]
    ) as crash_tester:
        return crash_tester.recover(run["target"], run["workflow_id"], check=check)


def test_the_fixtures_are_small_and_hold_pending_runs() -> None:
    assert FIXTURES, "no upgrade fixture: run python -m tools.make_upgrade_fixture"
    for fixture in FIXTURES:
        assert fixture.stat().st_size < 1_000_000
        with sqlite3.connect(fixture) as connection:
            pending = {
                row[0]
                for row in connection.execute(
                    "SELECT workflow_uuid FROM workflow_status WHERE status = 'PENDING'"
                )
            }
        connection.close()
        manifest = json.loads(fixture.with_suffix(".json").read_text())
        assert {run["workflow_id"] for run in manifest["runs"]} <= pending
        assert manifest["format"] <= FORMAT


@pytest.mark.parametrize(
    ("fixture", "run"), RUNS, ids=[f"{fixture.stem}-{run['workflow_id']}" for fixture, run in RUNS]
)
def test_a_run_left_pending_by_a_stored_database_recovers(
    fixture: Path, run: dict[str, Any], tmp_path: Path
) -> None:
    recorded_under = json.loads(fixture.with_suffix(".json").read_text())["application_version"]
    assert recorded_under == APPLICATION_VERSION, (
        f"{fixture.name}'s runs are pending under application version {recorded_under}, and this code "
        f"launches as {APPLICATION_VERSION}: DBOS would not resume them. A release that changes the "
        "record format decides here: recover them (read their format and resume them), or refuse "
        "them with a RecordFormatError naming both formats, and tests it."
    )
    url = _copy(fixture, tmp_path)
    report = _recover(url, tmp_path, run)
    uninterrupted = run["uninterrupted"]

    assert essentials(report.output) == essentials(uninterrupted["output"])
    assert report.steps == uninterrupted["steps"]
    # Exactly what had not finished ran: the uninterrupted run's step bodies, less those that
    # finished before the kill (the one in flight at the kill runs again: at least once).
    finished = Counter(run["executed_before_kill"])
    if run["in_flight"] is not None:
        finished[run["in_flight"]] -= 1
    assert Counter(report.executed) == Counter(uninterrupted["executed"]) - finished
    # Each side effect happened once in all: before the kill or in the recovery.
    after = Counter(ledger_counts(tmp_path / "ledger.jsonl"))
    expected = Counter(uninterrupted["side_effects"]) - Counter(run["side_effects_before_kill"])
    assert after == expected, (after, expected, ledger.entries(tmp_path / "ledger.jsonl"), report)


def _rewrite_step_records(url: str, workflow_id: str, change: Any) -> int:
    """Rewrite the JSON records of a run's completion steps (DBOS stores each as a pickled str)."""
    path = url.removeprefix("sqlite:///")
    changed = 0
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT function_id, output FROM operation_outputs "
            "WHERE workflow_uuid = ? AND function_name LIKE '%.llm' AND serialization = 'py_pickle'",
            (workflow_id,),
        ).fetchall()
        for function_id, output in rows:
            record = json.loads(pickle.loads(base64.b64decode(output)))
            change(record)
            stored = base64.b64encode(pickle.dumps(json.dumps(record))).decode()
            connection.execute(
                "UPDATE operation_outputs SET output = ? WHERE workflow_uuid = ? AND function_id = ?",
                (stored, workflow_id, function_id),
            )
            changed += 1
    connection.close()
    return changed


def test_a_record_of_a_future_format_is_refused_naming_both_formats(tmp_path: Path) -> None:
    """A run whose records a newer crew_durable wrote fails at the first one, saying so; nothing runs."""
    fixture = FIXTURES[-1]
    run = next(
        r for r in json.loads(fixture.with_suffix(".json").read_text())["runs"] if "agent" in r["workflow_id"]
    )
    url = _copy(fixture, tmp_path)
    future = FORMAT + 1

    def from_the_future(record: dict[str, Any]) -> None:
        record["result"]["format"] = future

    assert _rewrite_step_records(url, run["workflow_id"], from_the_future) >= 1
    report = _recover(url, tmp_path, run, check=False)

    assert report.error is not None and report.error.startswith(RecordFormatError.__name__)
    assert f"format {future}" in report.error and f"format {FORMAT}" in report.error
    assert report.requests == {}
    assert ledger.entries(tmp_path / "ledger.jsonl") == []


def test_a_crew_whose_task_record_is_of_a_future_format_is_refused_without_running_anything(
    tmp_path: Path,
) -> None:
    fixture = FIXTURES[-1]
    runs = json.loads(fixture.with_suffix(".json").read_text())["runs"]
    run = next(r for r in runs if r["workflow_id"] == "upgrade-crew-mid-task")
    url = _copy(fixture, tmp_path)

    def from_the_future(record: dict[str, Any]) -> None:
        record["result"]["format"] = FORMAT + 1

    assert _rewrite_step_records(url, f"{run['workflow_id']}-4", from_the_future) == 1  # the writer's task
    report = _recover(url, tmp_path, run, check=False)

    assert report.error is not None and "RecordFormatError" in report.error
    assert report.requests == {}
    assert ledger.entries(tmp_path / "ledger.jsonl") == []


def test_recovering_under_another_executor_id_says_why_the_run_is_not_resumed(tmp_path: Path) -> None:
    """crew_durable.testing fails at once, rather than waiting for a run DBOS will never resume."""
    run = RUNS[-1][1]
    url = _copy(RUNS[-1][0], tmp_path)
    with (
        fixture_tester(url, tmp_path, tmp_path / "ledger.jsonl", run["target"]) as crash_tester,
        pytest.raises(CrashTestError, match=f"executor id '{run['workflow_id']}'"),
    ):
        crash_tester.recover(run["target"], run["workflow_id"])


def test_recorded_values_carry_their_format_and_older_unstamped_ones_are_read() -> None:
    record = value_to_json("seventeen")
    assert record == {"format": FORMAT, "kind": "text", "value": "seventeen"}
    assert value_from_json(record) == "seventeen"
    assert value_from_json({"kind": "text", "value": "from format 2"}) == "from format 2"  # before the stamp


@pytest.mark.parametrize(
    ("found", "says"),
    [
        (FORMAT + 1, [f"record format {FORMAT + 1}", f"record format {FORMAT}", "upgrade crew_durable"]),
        (OLDEST_READABLE_FORMAT - 1, [f"record format {OLDEST_READABLE_FORMAT - 1}", "older release"]),
        ("2", ["not a crew_durable format"]),
    ],
)
def test_a_record_this_code_cannot_read_is_refused_naming_both_formats(
    found: object, says: list[str]
) -> None:
    with pytest.raises(RecordFormatError) as refused:
        value_from_json({"format": found, "kind": "text", "value": "?"}, "completion record")
    message = str(refused.value)
    assert message.startswith("This completion record ")
    assert f"application version crew-durable-r{FORMAT}" in message
    for words in says:
        assert words in message


def test_a_launch_warns_about_runs_left_to_another_application_version(tmp_path: Path) -> None:
    """DBOS says nothing about runs it will not resume because they started under another version."""
    url = f"sqlite:///{tmp_path}/app.sqlite"
    launch = (
        "import time\n"
        "from dbos import DBOS\n"
        "from crew_durable import dbos_config\n"
        f"DBOS(config=dbos_config('app', {url!r}))\n"
        "DBOS.launch()\n"
        "time.sleep(1)\n"
        "DBOS.destroy()\n"
    )

    def launched() -> str:
        return run_python(launch).stderr

    assert "wait under application version" not in launched()  # creates the database; nothing waits
    with CrewClient(url) as client:
        client.enqueue("newsroom", {}, queue_name="crews", application_version="crew-durable-r1")
    warned = launched()
    assert "1 crew_durable run(s) wait under application version 'crew-durable-r1'" in warned
    assert f"this process runs 'crew-durable-r{FORMAT}'" in warned
