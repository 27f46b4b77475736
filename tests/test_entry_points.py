"""Every crewAI entry point durable: Agent.kickoff and akickoff, and a crew's async kickoffs."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from dbos import DBOS, SetWorkflowID

from tests.support import ledger
from tests.support.apps import oracle
from tests.support.cassettes import played, replay
from tests.support.databases import Database
from tests.support.processes import Harness
from tests.support.steps import step_names

FORECAST = {"city": "Oslo", "weather": "clear skies"}


def test_an_agent_kickoff_is_a_workflow_that_replays_with_no_request(
    launched: Database, side_effects: Path
) -> None:
    workflow_id = f"oracle-{uuid.uuid4()}"
    with replay("oracle.kickoff") as cassette, SetWorkflowID(workflow_id):
        first = oracle.oracle.kickoff("What is the weather in Oslo?", response_format=oracle.Forecast)
    assert played(cassette) == 2
    assert isinstance(first.pydantic, oracle.Forecast) and first.pydantic.model_dump() == FORECAST
    assert step_names(workflow_id) == ["oracle.llm", "look_outside", "oracle.llm"]
    assert DBOS.get_workflow_status(workflow_id).name == "crew_durable.agent_kickoff"  # type: ignore[union-attr]

    with replay("oracle.kickoff") as cassette, SetWorkflowID(workflow_id):
        again = oracle.oracle.kickoff("What is the weather in Oslo?", response_format=oracle.Forecast)
    assert played(cassette) == 0
    assert isinstance(again.pydantic, oracle.Forecast)  # restored as the right type
    assert again.raw == first.raw and again.usage_metrics == first.usage_metrics
    assert ledger.count(side_effects, "look_outside") == 1


def test_an_async_agent_kickoff_replays_with_no_request(launched: Database) -> None:
    workflow_id = f"oracle-async-{uuid.uuid4()}"

    async def ask() -> object:
        with SetWorkflowID(workflow_id):
            return await oracle.oracle.akickoff(
                "What is the weather in Oslo?", response_format=oracle.Forecast
            )

    with replay("oracle.akickoff") as cassette:
        first = asyncio.run(ask())
    with replay("oracle.akickoff") as cassette:
        again = asyncio.run(ask())
    assert played(cassette) == 0
    assert again.pydantic == first.pydantic == oracle.Forecast(**FORECAST)  # type: ignore[attr-defined]


def test_a_killed_agent_kickoff_recovers_in_a_new_process(system_database: Database, tmp_path: Path) -> None:
    harness = Harness(system_database, tmp_path)
    workflow_id = f"oracle-{uuid.uuid4()}"
    harness.run_until_killed("oracle", "kickoff", workflow_id, pause_at_request=2)  # after the tool
    report = harness.run("recover", "oracle", "kickoff", workflow_id)
    assert report["result"] == {
        "raw": '{"city": "Oslo", "weather": "clear skies"}',
        "pydantic": FORECAST,
        "type": "Forecast",
    }
    assert ledger.count(harness.ledger, "look_outside") == 1  # the tool step before the kill: not again
    assert harness.requests() == 3  # 2, and the completion in flight at the kill
