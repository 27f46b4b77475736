"""A tool result crewAI moves to a file is read back by the same name after a recovery."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.support import ledger
from tests.support.databases import Database
from tests.support.processes import Harness

ANSWER = "The log starts: line 1: event 7 at tick 1\nline 2: event 14 at tick 2"


def test_a_deferred_tool_result_is_read_back_by_its_recorded_name_after_a_kill(
    system_database: Database, tmp_path: Path
) -> None:
    """Killed in the completion after the model read the file: the recovered run reads it again.

    The model asked to read the file by the name the original run gave it;
    the recovered conversation must be the original one (the cassette
    matches every request body), so the name must come back the same.
    """
    harness = Harness(system_database, tmp_path)
    workflow_id = f"clerk-{uuid.uuid4()}"
    harness.run_until_killed("bigdata", "execute_task", workflow_id, pause_at_request=3)
    report = harness.run("recover", "bigdata", "execute_task", workflow_id)
    assert report["result"] == ANSWER
    assert ledger.count(harness.ledger, "dump_log") == 1  # the big result came back from its step
    assert harness.requests() == 3 + 1
    assert report["steps"] == ["clerk.llm", "dump_log", "clerk.llm", "clerk.llm"]
