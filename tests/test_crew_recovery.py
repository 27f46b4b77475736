"""A crew kickoff killed with SIGKILL at several points resumes where it stopped."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from crew_durable.testing import RunReport
from tests.support import ledger
from tests.support.apps import newsroom
from tests.support.databases import Database, create
from tests.support.processes import Harness, crash_tester

UNINTERRUPTED_REQUESTS = 4

_reference: dict[str, Any] = {}


@pytest.fixture
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The newsroom kickoff run once without interruption, in a process of its own."""
    if not _reference:
        directory = tmp_path_factory.mktemp("reference")
        database = create("sqlite", directory)
        report = Harness(database, directory).run("run", "newsroom", "kickoff", f"ref-{uuid.uuid4()}")
        _reference.update(report)
    return _reference


_reference_runs: list[RunReport] = []


def reference_run(directory: Path) -> RunReport:
    """The newsroom kickoff run once to the end through crew_durable.testing (once per session)."""
    if not _reference_runs:
        database = create("sqlite", directory)
        with crash_tester(database, directory / "reference", cassette="newsroom.kickoff") as tester:
            _reference_runs.append(tester.run(newsroom.kickoff))
    return _reference_runs[0]


@pytest.mark.parametrize(
    ("kill_point", "kill", "requests_after_kill"),
    [
        ("inside the first task's loop", {"kill_at_step": 3}, {"researcher": 1, "writer": 2}),
        ("right after the first task finished", {"kill_at_step": 4}, {"writer": 2}),
        ("inside the second task's tool step", {"kill_in_tool": "publish"}, {"writer": 1}),
    ],
)
def test_a_killed_kickoff_resumes_where_it_stopped(
    kill_point: str,
    kill: dict[str, Any],
    requests_after_kill: dict[str, int],
    system_database: Database,
    tmp_path: Path,
) -> None:
    """Through crew_durable.testing, as users test their crews (the step in flight is counted twice)."""
    reference = reference_run(tmp_path.parent)
    with crash_tester(system_database, tmp_path, cassette="newsroom.kickoff") as tester:
        report = tester.crash_and_recover(newsroom.kickoff, **kill)

    assert report.output == reference.output  # raw, pydantic, tasks' outputs, token usage
    assert report.steps == reference.steps
    llm = {
        "researcher": "newsroom.topic_researcher.llm",
        "writer": "newsroom.topic_writer.llm",
    }
    assert report.requests_after_kill == {llm[agent]: count for agent, count in requests_after_kill.items()}
    assert report.requests == {
        name: count + (report.killed_in == f"step {kill.get('kill_at_step')} ({name})")
        for name, count in reference.requests.items()
    }
    assert ledger.count(tmp_path / "ledger.jsonl", "search_news") == 1
    assert ledger.count(tmp_path / "ledger.jsonl", "publish") == 1


def test_calling_a_kickoff_that_is_being_recovered_returns_as_soon_as_it_finishes(
    uninterrupted: dict[str, Any], system_database: Database, tmp_path: Path
) -> None:
    """A restarted app calls the same id at once; DBOS would poll the running kickoff once a second."""
    harness = Harness(system_database, tmp_path)
    workflow_id = f"newsroom-{uuid.uuid4()}"
    harness.run_until_killed("newsroom", "kickoff", workflow_id, pause_at_request=3)
    report = harness.run("recall", "newsroom", "kickoff", workflow_id)

    assert report["result"] == uninterrupted["result"]
    assert report["returned_at"] - report["last_step_completed_at"] < 0.5
    assert harness.requests() == UNINTERRUPTED_REQUESTS + 1
