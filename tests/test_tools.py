"""Tools are the user's choice: @DBOS.step is checkpointed, @DBOS.workflow is a child workflow."""

from __future__ import annotations

import uuid
from pathlib import Path

from dbos import SetWorkflowID

from tests.support import ledger
from tests.support.apps import exchange
from tests.support.cassettes import replay
from tests.support.databases import Database
from tests.support.processes import Harness
from tests.support.steps import work_steps


def test_a_workflow_tool_runs_as_a_child_workflow(launched: Database, side_effects: Path) -> None:
    workflow_id = f"teller-{uuid.uuid4()}"
    with replay("exchange.execute_task"), SetWorkflowID(workflow_id):
        assert exchange.execute_task() == "125.0 USD"

    steps = work_steps(workflow_id)
    child_ids = {s["child_workflow_id"] for s in steps if s["child_workflow_id"]}
    assert len(child_ids) == 1
    [child_id] = child_ids
    assert child_id.startswith(workflow_id)  # derived from the parent's id
    assert [s["function_name"] for s in work_steps(child_id)] == [
        "fetch_rate",
        "book_conversion",
    ]
    assert ledger.count(side_effects, "book_conversion") == 1


def test_a_finished_workflow_tool_is_not_run_again_on_recovery(
    system_database: Database, tmp_path: Path
) -> None:
    harness = Harness(system_database, tmp_path)
    workflow_id = f"teller-{uuid.uuid4()}"
    harness.run_until_killed("exchange", "execute_task", workflow_id, pause_at_request=2)
    report = harness.run("recover", "exchange", "execute_task", workflow_id)

    assert report["result"] == "125.0 USD"
    assert ledger.count(harness.ledger, "fetch_rate") == 1
    assert ledger.count(harness.ledger, "book_conversion") == 1
    assert harness.requests() == 2 + 1
