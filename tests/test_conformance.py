"""crewAI's own recordings (real OpenAI traffic) replayed through DBOSAgent.

The cassettes live in ``../shared/cassettes/crewai/`` (crewAI 1.15.17's test
suite); they are read from there, never copied. Each test builds its agents
exactly as the named crewAI test does and asserts crewAI's expected output.
Requests are matched by method and URI in recording order, as crewAI's own
suite replays them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from crewai import Agent, Task
from crewai.tools import tool
from dbos import DBOS, SetWorkflowID
from vcr.cassette import Cassette

from crew_durable import DBOSAgent
from tests.support.cassettes import SHARED_CASSETTES, played, recorder
from tests.support.databases import Database


@contextmanager
def crewai_cassette(name: str) -> Iterator[Cassette]:
    path = SHARED_CASSETTES / f"{name}.yaml"
    if not path.exists():
        pytest.skip(f"crewAI's recordings are not available at {SHARED_CASSETTES}")
    with recorder(match_on=("method", "uri")).use_cassette(str(path)) as cassette:
        yield cassette


def completions(cassette: Cassette) -> int:
    return played(cassette)


@tool
@DBOS.step()
def multiplier(first_number: int, second_number: int) -> float:
    """Useful for when you need to multiply two numbers together."""
    return first_number * second_number


conformance_agent = DBOSAgent(
    agent_name="conformance.test_agent_execution_with_tools",
    orig_agent=Agent(
        role="test role",
        goal="test goal",
        backstory="test backstory",
        tools=[multiplier],
        allow_delegation=False,
    ),
)


def test_agent_execution_with_tools(launched: Database) -> None:
    """lib/crewai/tests/agents/test_agent.py::test_agent_execution_with_tools"""
    task = Task(
        description="What is 3 times 4?",
        agent=conformance_agent,
        expected_output="The result of the multiplication.",
    )
    workflow_id = f"conformance-{uuid.uuid4()}"
    with crewai_cassette("test_agent_execution_with_tools") as cassette, SetWorkflowID(workflow_id):
        output = conformance_agent.execute_task(task)

    assert output == "12"
    assert completions(cassette) == 2
    names = [s["function_name"] for s in DBOS.list_workflow_steps(workflow_id)]
    assert [n for n in names if not n.endswith("count_tokens")] == [
        "conformance.test_agent_execution_with_tools.llm",
        "multiplier",
        "conformance.test_agent_execution_with_tools.llm",
    ]

    with crewai_cassette("test_agent_execution_with_tools") as cassette, SetWorkflowID(workflow_id):
        assert conformance_agent.execute_task(task) == "12"
    assert completions(cassette) == 0
