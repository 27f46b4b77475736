"""DBOSCrew: one workflow per kickoff, one child workflow per task run."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from crewai.crews.crew_output import CrewOutput
from dbos import DBOS, SetWorkflowID

from crew_durable._outputs import crew_output_to_json
from tests.support import ledger
from tests.support.apps import newsroom
from tests.support.cassettes import played, replay
from tests.support.databases import Database
from tests.support.steps import work_steps


def comparable(output: CrewOutput) -> dict[str, Any]:
    return crew_output_to_json(output)


def test_kickoff_returns_what_the_plain_crew_returns(launched: Database, side_effects: Path) -> None:
    with replay("newsroom.kickoff"):
        plain = newsroom.build_crew().kickoff(inputs=newsroom.INPUTS)
    workflow_id = f"crew-{uuid.uuid4()}"
    with replay("newsroom.kickoff") as cassette, SetWorkflowID(workflow_id):
        durable = newsroom.newsroom.kickoff(inputs=newsroom.INPUTS)

    assert isinstance(plain, CrewOutput)
    assert comparable(durable) == comparable(plain)
    assert isinstance(durable.pydantic, newsroom.Article)
    assert isinstance(durable.tasks_output[1].pydantic, newsroom.Article)
    assert durable.token_usage.successful_requests == 4
    assert newsroom.newsroom.usage_metrics == durable.token_usage
    assert played(cassette) == 4


def test_each_task_is_a_child_workflow_of_the_kickoff(launched: Database) -> None:
    workflow_id = f"crew-{uuid.uuid4()}"
    with replay("newsroom.kickoff"), SetWorkflowID(workflow_id):
        newsroom.newsroom.kickoff(inputs=newsroom.INPUTS)

    children = [s["child_workflow_id"] for s in work_steps(workflow_id) if s["child_workflow_id"]]
    tasks = list(dict.fromkeys(children))
    assert len(tasks) == 2
    assert all(child.startswith(f"{workflow_id}-") for child in tasks)
    steps = [[s["function_name"] for s in work_steps(child)] for child in tasks]
    assert steps[0] == ["newsroom.topic_researcher.llm", "search_news", "newsroom.topic_researcher.llm"]
    assert steps[1] == ["newsroom.topic_writer.llm", "publish", "newsroom.topic_writer.llm"]


def test_a_second_kickoff_with_the_same_id_makes_no_requests(launched: Database, side_effects: Path) -> None:
    workflow_id = f"crew-{uuid.uuid4()}"
    with replay("newsroom.kickoff"), SetWorkflowID(workflow_id):
        first = newsroom.newsroom.kickoff(inputs=newsroom.INPUTS)
    with replay("newsroom.kickoff") as cassette, SetWorkflowID(workflow_id):
        second = newsroom.newsroom.kickoff(inputs=newsroom.INPUTS)

    assert comparable(second) == comparable(first)
    assert played(cassette) == 0
    assert ledger.count(side_effects, "search_news") == 1
    assert ledger.count(side_effects, "publish") == 1


def test_kickoff_async_and_start_are_durable_too(launched: Database) -> None:
    async_id, started_id = f"crew-{uuid.uuid4()}", f"crew-{uuid.uuid4()}"

    async def kickoff_async() -> CrewOutput:
        with SetWorkflowID(async_id):
            return await newsroom.newsroom.kickoff_async(inputs=newsroom.INPUTS)

    with replay("newsroom.kickoff"):
        from_async = asyncio.run(kickoff_async())
    with replay("newsroom.kickoff"), SetWorkflowID(started_id):
        handle = newsroom.newsroom.start(inputs=newsroom.INPUTS)
        assert handle.get_workflow_id() == started_id
        from_handle = handle.get_result(polling_interval_sec=0.05)

    assert comparable(from_async) == comparable(from_handle)
    assert isinstance(from_handle.pydantic, newsroom.Article)
    assert DBOS.get_workflow_status(async_id).status == "SUCCESS"


def test_kickoff_for_each_is_one_workflow_with_a_kickoff_per_input(launched: Database) -> None:
    workflow_id = f"batch-{uuid.uuid4()}"
    with replay("newsroom.kickoff"), SetWorkflowID(workflow_id):
        [output] = newsroom.newsroom.kickoff_for_each([newsroom.INPUTS])

    assert isinstance(output.pydantic, newsroom.Article)
    [kickoff] = {s["child_workflow_id"] for s in work_steps(workflow_id) if s["child_workflow_id"]}
    assert DBOS.get_workflow_status(kickoff).name == "crew_durable.crew_kickoff"
    assert newsroom.newsroom.usage_metrics == output.token_usage
