"""A recorded child run is never handed to a call that starts another crew or agent under its id."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from crewai import Agent, Crew, Task
from dbos import DBOS, SetWorkflowID

from crew_durable import DBOSCrew, ReplayMismatchError
from tests.support.cassettes import FAKE_PORT, fake_llm
from tests.support.databases import Database
from tools.fake_openai import serve


def _crew(side: str) -> DBOSCrew:
    agent = Agent(role=f"{side} agent", goal="Answer", backstory="Brief.", llm=fake_llm())
    task = Task(description=f"Answer for the {side} branch.", expected_output="An answer", agent=agent)
    return DBOSCrew(crew_name=f"branches.{side}", orig_crew=Crew(agents=[agent], tasks=[task]))


crews = {"left": _crew("left"), "right": _crew("right")}
order = {"sides": ["left", "right"]}


@DBOS.workflow(name="tests.two_branches")
def two_branches() -> dict[str, str]:
    """A user's workflow whose branches start in an order that may change (as threads do)."""
    return {side: crews[side].kickoff().raw for side in order["sides"]}


def _brain(body: dict[str, Any]) -> dict[str, Any]:
    side = "LEFT" if "left branch" in str(body["messages"]) else "RIGHT"
    return {"content": f"Thought: done\nFinal Answer: {side} result"}


def test_branches_replayed_in_another_order_fail_loudly_instead_of_swapping_results(
    launched: Database, fixed_ports: None
) -> None:
    workflow_id = f"branches-{uuid.uuid4()}"
    order["sides"] = ["left", "right"]
    with serve(_brain, port=FAKE_PORT), SetWorkflowID(workflow_id):
        assert two_branches() == {"left": "LEFT result", "right": "RIGHT result"}

    order["sides"] = ["right", "left"]  # after a crash, the other thread got there first
    replayed = DBOS.fork_workflow(workflow_id, 2)  # replays the first branch's recorded kickoff
    mismatch = r"is a crew run of 'branches\.left'.*starts crew 'branches\.right'"
    with pytest.raises(ReplayMismatchError, match=mismatch):
        replayed.get_result()
