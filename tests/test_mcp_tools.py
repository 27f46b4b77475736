"""Tools crewAI takes from an MCP server at run time can be steps too (``tool_steps``)."""

from __future__ import annotations

import uuid
from pathlib import Path

from dbos import SetWorkflowID

from crew_durable import DBOSTool
from tests.support import ledger
from tests.support.apps import concierge
from tests.support.cassettes import played, replay
from tests.support.databases import Database
from tests.support.harness import workflow_tree
from tests.support.processes import Harness

REPLY = "Booked: booking BK-ADA-1"
TASK_RUN = ["concierge.llm", "concierge.tool.book_room", "concierge.llm"]


def test_an_mcp_tool_selected_by_its_server_name_is_a_step(launched: Database, side_effects: Path) -> None:
    workflow_id = f"front-desk-{uuid.uuid4()}"
    with replay("concierge.kickoff") as cassette, SetWorkflowID(workflow_id):
        assert concierge.kickoff()["raw"] == REPLY
    assert played(cassette) == 2
    assert workflow_tree(workflow_id) == [["crew_durable.agent_run", TASK_RUN]]
    assert ledger.count(side_effects, "book_room") == 1

    with replay("concierge.kickoff") as cassette, SetWorkflowID(workflow_id):
        assert concierge.kickoff()["raw"] == REPLY
    assert played(cassette) == 0
    assert ledger.count(side_effects, "book_room") == 1


def test_a_copy_keeps_the_mcp_servers_and_makes_their_tools_steps() -> None:
    copied = concierge.concierge.copy()  # crewAI's Agent.copy drops mcps; a crew runs on copies
    assert copied.mcps == concierge.concierge.mcps
    [tool] = copied.get_mcp_tools(copied.mcps)
    assert isinstance(tool, DBOSTool)
    assert not isinstance(tool.wrapped, DBOSTool)
    assert tool.step_name == "concierge.tool.book_room"


def test_a_recovered_run_lists_the_mcp_server_again_and_does_not_book_twice(
    system_database: Database, tmp_path: Path
) -> None:
    # New interpreters: the app hands the ledger's path to the MCP server when it is imported.
    harness = Harness(system_database, tmp_path, fresh=True)
    workflow_id = f"front-desk-{uuid.uuid4()}"
    harness.run_until_killed("concierge", "kickoff", workflow_id, pause_at_request=2)  # booked, not answered
    report = harness.run("recover", "concierge", "kickoff", workflow_id)

    assert report["result"]["raw"] == REPLY
    assert report["tree"] == [["crew_durable.agent_run", TASK_RUN]]
    assert ledger.count(harness.ledger, "book_room") == 1
    assert harness.requests() == 3  # the answer in flight at the kill was asked for again
