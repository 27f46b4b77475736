"""Every crewAI entry point durable: Agent.kickoff and akickoff, a crew's native async kickoffs."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from dbos import DBOS, SetWorkflowID

from tests.support import ledger
from tests.support.apps import fleet, oracle, trio
from tests.support.cassettes import FAKE_PORT, played, replay
from tests.support.databases import Database
from tests.support.processes import Harness
from tests.support.steps import step_names
from tools.fake_openai import serve

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


def test_a_native_async_crew_kickoff_replays_with_no_request(launched: Database, fixed_ports: None) -> None:
    workflow_id = f"trio-async-{uuid.uuid4()}"

    async def kickoff() -> object:
        with SetWorkflowID(workflow_id):
            return await trio.trio.akickoff()

    with serve(trio.brain, port=FAKE_PORT) as server:
        first = asyncio.run(kickoff())
        asked = len(server.requests)
        again = asyncio.run(kickoff())
        assert len(server.requests) == asked == 6  # nothing asked the second time
    assert again.raw == first.raw == "The publish is finished: publish done"  # type: ignore[attr-defined]
    status = DBOS.get_workflow_status(workflow_id)
    assert status is not None and status.name == "crew_durable.crew_kickoff_async"
    tasks = DBOS.list_workflows(parent_workflow_id=workflow_id)
    assert [t.name for t in tasks] == ["crew_durable.agent_run_async"] * 3  # its tasks ran natively async too


def test_kickoff_for_each_async_gives_each_input_its_own_run_and_replays(
    launched: Database, fixed_ports: None
) -> None:
    workflow_id = f"fleet-each-{uuid.uuid4()}"
    orders = [{"order": f"o{n}"} for n in range(3)]

    async def kickoff() -> list[object]:
        with SetWorkflowID(workflow_id):
            return await fleet.fleet.kickoff_for_each_async(orders)

    with serve(fleet.brain, port=FAKE_PORT) as server:
        first = asyncio.run(kickoff())
        asked = len(server.requests)
        again = asyncio.run(kickoff())
        assert len(server.requests) == asked == 6
    expected = [f"Shipped o{n}: track-o{n}" for n in range(3)]
    assert [o.raw for o in first] == [o.raw for o in again] == expected  # type: ignore[attr-defined]
