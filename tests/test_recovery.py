"""A task run killed with SIGKILL is recovered by a fresh process, on SQLite and Postgres."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.support import ledger
from tests.support.apps import calculator
from tests.support.databases import Database
from tests.support.processes import Harness, crash_tester

UNINTERRUPTED_REQUESTS = 3
STEPS = ["calculator.llm", "multiplier", "calculator.llm", "calculator.llm"]


def test_killed_after_a_step_tool_resumes_without_repeating_it(
    system_database: Database, tmp_path: Path
) -> None:
    harness = Harness(system_database, tmp_path)
    workflow_id = f"task-{uuid.uuid4()}"

    # Request 2 is the completion that follows the multiplier step.
    harness.run_until_killed("calculator", "execute_task", workflow_id, pause_at_request=2)
    assert ledger.count(harness.ledger, "multiplier") == 1
    report = harness.run("recover", "calculator", "execute_task", workflow_id)

    assert report["result"] == "17"
    assert report["steps"] == STEPS
    assert harness.requests() == UNINTERRUPTED_REQUESTS + 1  # only the in-flight one twice
    first_new_step = min(t for t in report["step_started_at"] if t >= report["launched_at"])
    assert first_new_step - report["launched_at"] < 0.5  # recovery starts at launch, not a poll later
    assert report["requests"] == report["requests_before_call"]  # the call after recovery paid nothing
    assert ledger.count(harness.ledger, "multiplier") == 1
    assert ledger.count(harness.ledger, "adder") == 1


def test_a_plain_tool_runs_again_when_its_run_is_recovered(system_database: Database, tmp_path: Path) -> None:
    # Step 4 is the completion that follows the plain adder tool, which is not a step.
    with crash_tester(system_database, tmp_path, cassette="calculator.execute_task") as tester:
        report = tester.crash_and_recover(calculator.execute_task, kill_at_step=4)

    assert report.output == "17"
    assert report.steps == STEPS
    assert report.requests_after_kill == {"calculator.llm": 1}  # only the one in flight
    assert ledger.count(tmp_path / "ledger.jsonl", "multiplier") == 1
    assert ledger.count(tmp_path / "ledger.jsonl", "adder") == 2


def test_a_recorded_provider_error_replays_as_the_same_kind_of_error(
    system_database: Database, tmp_path: Path
) -> None:
    """Killed while summarising: the recovered run must again see a context overflow."""
    from tests.test_llm import ARCHIVIST_ANSWER

    harness = Harness(system_database, tmp_path)
    workflow_id = f"archive-{uuid.uuid4()}"
    harness.run_until_killed("archivist", "execute_task", workflow_id, pause_at_request=2)
    report = harness.run("recover", "archivist", "execute_task", workflow_id)

    assert report["result"] == ARCHIVIST_ANSWER
    assert report["steps"] == ["archivist.llm", "archivist.llm"]
    assert harness.requests() == 2 + 1
