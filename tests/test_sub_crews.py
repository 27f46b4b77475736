"""A ``@DBOS.workflow`` tool that kicks off another DBOSCrew: a child workflow that recovers on its own."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from dbos import SetWorkflowID

from tests.support import ledger
from tests.support.apps import agency
from tests.support.cassettes import played, replay
from tests.support.databases import Database
from tests.support.harness import workflow_tree
from tests.support.processes import Harness

REPLY = "Dear client, Report: Nordics: 1200 units, up 8%."
UNINTERRUPTED_REQUESTS = (
    4  # manager calls the tool; analyst calls fetch_figures; analyst answers; manager answers
)

_ANALYST_RUN = ["research_desk.analyst.llm", "fetch_figures", "research_desk.analyst.llm"]
_SUB_CREW_RUN = [["crew_durable.agent_run", _ANALYST_RUN]]
_MANAGER_RUN = [
    "agency.account_manager.llm",
    ["commission_report", [["crew_durable.crew_kickoff", _SUB_CREW_RUN]]],
    "agency.account_manager.llm",
]
TREE = [["crew_durable.agent_run", _MANAGER_RUN]]
"""The kickoff's workflows and steps: the sub-crew is a child of the tool's workflow."""


def test_a_sub_crew_runs_as_a_child_workflow_of_the_tool(launched: Database, side_effects: Path) -> None:
    workflow_id = f"agency-{uuid.uuid4()}"
    with replay("agency.kickoff") as cassette, SetWorkflowID(workflow_id):
        assert agency.kickoff()["raw"] == REPLY
    assert played(cassette) == UNINTERRUPTED_REQUESTS

    assert workflow_tree(workflow_id) == TREE
    assert ledger.count(side_effects, "fetch_figures") == 1

    with replay("agency.kickoff") as cassette, SetWorkflowID(workflow_id):
        assert agency.kickoff()["raw"] == REPLY
    assert played(cassette) == 0
    assert ledger.count(side_effects, "commission_report") == 1


@pytest.mark.parametrize(
    ("kill_point", "kill"),
    [
        ("inside the sub-crew's tool step", {"pause_in_tool": "fetch_figures"}),
        ("after the sub-crew finished", {"pause_at_request": 4}),
    ],
)
def test_a_killed_sub_crew_recovers_without_repeating_its_finished_steps(
    kill_point: str, kill: dict[str, Any], system_database: Database, tmp_path: Path
) -> None:
    harness = Harness(system_database, tmp_path)
    workflow_id = f"agency-{uuid.uuid4()}"
    harness.run_until_killed("agency", "kickoff", workflow_id, **kill)
    report = harness.run("recover", "agency", "kickoff", workflow_id)

    assert report["result"]["raw"] == REPLY
    assert harness.requests() <= UNINTERRUPTED_REQUESTS + 1
    assert ledger.count(harness.ledger, "fetch_figures") == 1
    assert report["tree"] == TREE  # no step recorded twice, no second sub-crew
