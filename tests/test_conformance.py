"""crewAI's own recordings (real OpenAI traffic) replayed through DBOSAgent.

The cassettes live in ``../shared/cassettes/crewai/`` (crewAI 1.15.17's test
suite); they are read from there, never copied. Each test builds its agents
exactly as the named crewAI test does and asserts crewAI's expected output.
Requests are matched by method and URI in recording order, as crewAI's own
suite replays them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from crewai import Agent, Crew, Process, Task
from crewai.tools import tool
from dbos import DBOS, SetWorkflowID
from pydantic import BaseModel
from vcr.cassette import Cassette

from crew_durable import DBOSAgent, DBOSCrew
from tests.support import harness as harness_module
from tests.support import ledger
from tests.support.apps import parallel_crewai
from tests.support.cassettes import SHARED_CASSETTES, played, recorder
from tests.support.databases import Database
from tests.support.processes import Harness
from tests.support.steps import work_steps


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
    names = [s["function_name"] for s in work_steps(workflow_id)]
    assert [n for n in names if not n.endswith("count_tokens")] == [
        "conformance.test_agent_execution_with_tools.llm",
        "multiplier",
        "conformance.test_agent_execution_with_tools.llm",
    ]

    with crewai_cassette("test_agent_execution_with_tools") as cassette, SetWorkflowID(workflow_id):
        assert conformance_agent.execute_task(task) == "12"
    assert completions(cassette) == 0


class ScoreOutput(BaseModel):
    """As in crewAI's test, at module level so a recovering process can import it."""

    score: int


scorer = Agent(
    role="Scorer",
    goal="Score the title",
    backstory="You're an expert scorer, specialized in scoring titles.",
    allow_delegation=False,
    llm="gpt-4o",
    function_calling_llm="gpt-4o",
    verbose=True,
)
score_crew = DBOSCrew(
    crew_name="conformance.test_output_pydantic_to_another_task",
    orig_crew=Crew(
        agents=[scorer],
        tasks=[
            Task(
                description="Give me an integer score between 1-5 for the following title: "
                "'The impact of AI in the future of work'",
                expected_output="The score of the title.",
                output_pydantic=ScoreOutput,
                agent=scorer,
            ),
            Task(
                description="Given the score the title 'The impact of AI in the future of work' got, "
                "give me an integer score between 1-5 for the following title: 'Return of the Jedi', "
                "you MUST give it a score, use your best judgment",
                expected_output="The score of the title.",
                output_pydantic=ScoreOutput,
                agent=scorer,
            ),
        ],
        verbose=True,
    ),
)


def test_output_pydantic_to_another_task(launched: Database) -> None:
    """lib/crewai/tests/test_task.py::test_output_pydantic_to_another_task"""
    workflow_id = f"conformance-{uuid.uuid4()}"
    with crewai_cassette("test_output_pydantic_to_another_task") as cassette, SetWorkflowID(workflow_id):
        result = score_crew.kickoff()

    assert isinstance(result.pydantic, ScoreOutput)
    assert result.pydantic.score == 5
    assert isinstance(result.tasks_output[0].pydantic, ScoreOutput)
    assert result.tasks_output[0].pydantic.score == 4  # fed to the second task as context
    assert completions(cassette) == 2

    with crewai_cassette("test_output_pydantic_to_another_task") as cassette, SetWorkflowID(workflow_id):
        again = score_crew.kickoff()
    assert completions(cassette) == 0
    assert again.pydantic == result.pydantic


hierarchical_crew = DBOSCrew(
    crew_name="conformance.hierarchical",
    orig_crew=Crew(
        agents=[
            Agent(
                role="Researcher",
                goal="Be super empathetic.",
                backstory="You're love to sey howdy.",
                allow_delegation=False,
            )
        ],
        tasks=[Task(description="Ask the researched to say hi!", expected_output="Howdy!")],
        process=Process.hierarchical,
        manager_llm="gpt-4o",
    ),
)


def test_agent_usage_metrics_are_captured_for_hierarchical_process(launched: Database) -> None:
    """lib/crewai/tests/test_crew.py::test_agent_usage_metrics_are_captured_for_hierarchical_process"""
    workflow_id = f"conformance-{uuid.uuid4()}"
    recording = "test_agent_usage_metrics_are_captured_for_hierarchical_process"
    with crewai_cassette(recording) as cassette, SetWorkflowID(workflow_id):
        result = hierarchical_crew.kickoff()

    assert result.raw
    assert result.token_usage.total_tokens > 0
    assert result.token_usage.prompt_tokens > 0
    assert result.token_usage.completion_tokens > 0
    assert result.token_usage.successful_requests == completions(cassette) == 3
    [manager_run] = {s["child_workflow_id"] for s in work_steps(workflow_id) if s["child_workflow_id"]}
    manager_steps = work_steps(manager_run)
    delegated = [s["child_workflow_id"] for s in manager_steps if s["child_workflow_id"]]
    assert delegated, "the coworker's work runs as a child workflow of the manager's run"
    assert {s["function_name"] for s in manager_steps} >= {"conformance.hierarchical.manager.llm"}
    researcher_steps = {s["function_name"] for s in work_steps(delegated[0])}
    assert "conformance.hierarchical.researcher.llm" in researcher_steps

    with crewai_cassette(recording) as cassette, SetWorkflowID(workflow_id):
        again = hierarchical_crew.kickoff()
    assert completions(cassette) == 0
    assert again.token_usage == result.token_usage


def test_openai_parallel_native_tool_calling_test_crew(launched: Database, side_effects: Path) -> None:
    """lib/crewai/tests/agents/test_native_tool_calling.py::TestOpenAINativeToolCalling::
    test_openai_parallel_native_tool_calling_test_crew"""
    workflow_id = f"conformance-{uuid.uuid4()}"
    with parallel_crewai.cassette() as cassette, SetWorkflowID(workflow_id):
        result = parallel_crewai.kickoff()

    assert result
    assert completions(cassette) == 2
    searches = [e for e in ledger.entries(side_effects) if e["tool"] == "search"]
    assert len(searches) >= 3
    assert parallel_crewai.max_concurrency(searches) >= 2  # crewAI's assertion: the tools overlapped


def test_a_kill_in_the_middle_of_crewais_parallel_tool_calls_recovers(
    system_database: Database, tmp_path: Path
) -> None:
    if not parallel_crewai.RECORDING.exists():
        pytest.skip(f"crewAI's recordings are not available at {SHARED_CASSETTES}")
    harness = Harness(system_database, tmp_path)
    workflow_id = f"parallel-{uuid.uuid4()}"

    def tools_running() -> bool:  # the three one-second searches start after the first completion
        times = harness.request_times()
        return bool(times) and time.time() - times[0] > 0.5

    assert harness.run_and_kill_when("parallel_crewai", "kickoff", workflow_id, tools_running)
    assert harness.requests() == 1
    recovering = Harness(system_database, tmp_path, env={harness_module.ALREADY_PLAYED: "1"})
    report = recovering.run("recover", "parallel_crewai", "kickoff", workflow_id)

    assert report["result"]
    assert harness.requests() == 2  # the recorded first completion was not requested again
    [task_run] = {s for s in report["steps"] if s == "crew_durable.agent_run"}
    assert task_run
