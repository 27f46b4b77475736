"""DBOSAgent.execute_task / aexecute_task as durable workflows, in one process."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

from dbos import SetWorkflowID

from tests.support import ledger
from tests.support.apps import calculator
from tests.support.cassettes import played, replay
from tests.support.databases import Database
from tests.support.steps import work_steps

EXPECTED_STEPS = ["calculator.llm", "multiplier", "calculator.llm", "calculator.llm"]


def step_names(workflow_id: str) -> list[str]:
    return [step["function_name"] for step in work_steps(workflow_id)]


def recorded_usage(workflow_id: str) -> int:
    return sum(
        json.loads(step["output"])["usage"]["total_tokens"]
        for step in work_steps(workflow_id)
        if step["function_name"] == "calculator.llm"
    )


def test_execute_task_checkpoints_every_completion_and_step_tool(
    launched: Database, side_effects: Path
) -> None:
    workflow_id = f"task-{uuid.uuid4()}"
    with replay("calculator.execute_task") as cassette, SetWorkflowID(workflow_id):
        answer = calculator.execute_task()

    assert answer == "17"
    assert played(cassette) == 3
    assert step_names(workflow_id) == EXPECTED_STEPS
    assert ledger.count(side_effects, "multiplier") == 1
    assert ledger.count(side_effects, "adder") == 1


def test_same_workflow_id_returns_the_recorded_result_without_requests_or_tools(
    launched: Database, side_effects: Path
) -> None:
    workflow_id = f"task-{uuid.uuid4()}"
    llm = calculator.calculator.llm
    with replay("calculator.execute_task"), SetWorkflowID(workflow_id):
        first = calculator.execute_task()
    before = llm.get_token_usage_summary().total_tokens

    with replay("calculator.execute_task") as cassette, SetWorkflowID(workflow_id):
        second = calculator.execute_task()

    assert second == first == "17"
    assert played(cassette) == 0
    assert ledger.count(side_effects, "multiplier") == 1
    assert ledger.count(side_effects, "adder") == 1
    replayed_usage = llm.get_token_usage_summary().total_tokens - before
    assert replayed_usage == recorded_usage(workflow_id) > 0


def test_aexecute_task_is_durable_too(launched: Database, side_effects: Path) -> None:
    workflow_id = f"atask-{uuid.uuid4()}"

    async def run_twice() -> tuple[str, str, int]:
        with replay("calculator.aexecute_task"), SetWorkflowID(workflow_id):
            first = await calculator.aexecute_task()
        with replay("calculator.aexecute_task") as cassette, SetWorkflowID(workflow_id):
            second = await calculator.aexecute_task()
        return first, second, played(cassette)

    first, second, replayed_requests = asyncio.run(run_twice())

    assert first == second == "17"
    assert replayed_requests == 0
    assert step_names(workflow_id) == EXPECTED_STEPS
    assert ledger.count(side_effects, "multiplier") == 1


def test_last_messages_and_usage_match_between_run_and_replay(launched: Database) -> None:
    workflow_id = f"task-{uuid.uuid4()}"
    agent = calculator.calculator
    with replay("calculator.execute_task"), SetWorkflowID(workflow_id):
        calculator.execute_task()
    messages = agent.last_messages
    with SetWorkflowID(workflow_id):
        calculator.execute_task()

    assert agent.last_messages == messages
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]
    assert messages[-1]["content"] == "17"
