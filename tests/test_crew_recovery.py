"""A crew kickoff killed with SIGKILL at several points resumes where it stopped."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support import ledger
from tests.support.databases import Database, create
from tests.support.processes import Harness

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


@pytest.mark.parametrize(
    ("kill_point", "kill"),
    [
        ("inside the first task's loop", {"pause_at_request": 2}),
        ("right after the first task finished", {"pause_at_request": 3}),
        ("inside the second task's tool step", {"pause_in_tool": "publish"}),
    ],
)
def test_a_killed_kickoff_resumes_where_it_stopped(
    kill_point: str,
    kill: dict[str, Any],
    uninterrupted: dict[str, Any],
    system_database: Database,
    tmp_path: Path,
) -> None:
    harness = Harness(system_database, tmp_path)
    workflow_id = f"newsroom-{uuid.uuid4()}"
    harness.run_until_killed("newsroom", "kickoff", workflow_id, **kill)
    requests_before_kill = harness.requests()
    report = harness.run("recover", "newsroom", "kickoff", workflow_id)

    assert report["result"] == uninterrupted["result"]  # raw, pydantic, tasks' outputs, token usage
    assert report["steps"] == uninterrupted["steps"]
    assert harness.requests() <= UNINTERRUPTED_REQUESTS + 1
    if requests_before_kill >= 3:  # the research task had finished: nothing of it runs again
        assert harness.requests() - requests_before_kill <= 2
    assert ledger.count(harness.ledger, "search_news") == 1
    assert ledger.count(harness.ledger, "publish") == 1


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
