"""Side effects exactly once: tools made steps, idempotency keys, transient-only retries."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from crewai import Agent
from crewai.tools import tool
from dbos import DBOS, SetWorkflowID

from crew_durable import (
    CrewDurableError,
    DBOSAgent,
    DBOSTool,
    RecordedError,
    StepConfig,
    idempotency_key,
)
from tests.support import ledger
from tests.support.apps import calculator, payments
from tests.support.cassettes import fake_llm, played, replay
from tests.support.databases import Database
from tests.support.processes import Harness
from tests.support.steps import work_steps

ADA = '{"charged": "ch_ada_42", "receipt": "receipt for ch_ada_42 sent to ada@example.com"}'


calls_of_when = {"count": 0}


@tool
def when(event: str) -> Any:
    """When an event happens: a datetime, which JSON cannot hold."""
    calls_of_when["count"] += 1
    return datetime(2026, 12, 3, 9, 30, tzinfo=timezone.utc)


_when_step = DBOSTool.around(when, "checks.tool.when")


@DBOS.workflow(name="tests.call_when")
def call_when() -> str:
    return str(_when_step.run(event="launch"))


def test_selected_tools_are_steps_that_retry_only_transient_errors(
    launched: Database, side_effects: Path
) -> None:
    workflow_id = f"pay-{uuid.uuid4()}"
    with replay("payments.ada") as cassette, SetWorkflowID(workflow_id):
        assert payments.charge("ada") == ADA

    names = [s["function_name"] for s in work_steps(workflow_id)]
    assert names == [
        "cashier.llm",
        "cashier.llm",  # find_customer is a plain tool: no step
        "cashier.tool.charge_card",
        "cashier.llm",
        "cashier.tool.send_receipt",
        "cashier.llm",
    ]
    attempts = ledger.count(side_effects, "charge_attempt")
    [applied] = [e for e in ledger.entries(side_effects) if e["tool"] == "charge_applied"]
    [receipt] = [e for e in ledger.entries(side_effects) if e["tool"] == "send_receipt"]
    assert attempts == 2  # the timeout was retried inside the one step...
    assert ledger.count_where(side_effects, tool="charge_attempt", key=applied["key"]) == 2  # ...with one key
    assert applied["key"] != receipt["key"]
    assert applied["key"].startswith(workflow_id)

    with replay("payments.ada") as cassette, SetWorkflowID(workflow_id):
        assert payments.charge("ada") == ADA
    assert played(cassette) == 0
    assert ledger.count(side_effects, "charge_attempt") == attempts


def test_a_tool_error_is_recorded_and_fed_to_the_model_without_retrying(
    launched: Database, side_effects: Path
) -> None:
    workflow_id = f"pay-{uuid.uuid4()}"
    with replay("payments.bob"), SetWorkflowID(workflow_id):
        answer = payments.charge("bob")

    assert answer == "bob's card was declined: Error executing tool: card declined"
    [charge] = [s for s in work_steps(workflow_id) if s["function_name"] == "cashier.tool.charge_card"]
    assert isinstance(charge["error"], RecordedError)
    assert str(charge["error"]) == "card declined"
    assert ledger.count(side_effects, "charge_attempt") == 1  # not transient: not retried


def test_a_tool_result_json_cannot_hold_is_recorded_as_the_text_crewai_uses(launched: Database) -> None:
    workflow_id = f"when-{uuid.uuid4()}"
    calls_of_when["count"] = 0
    with SetWorkflowID(workflow_id):
        assert call_when() == "2026-12-03 09:30:00+00:00"  # what str() gives crewAI
    with SetWorkflowID(workflow_id):
        assert call_when() == "2026-12-03 09:30:00+00:00"
    assert calls_of_when["count"] == 1  # the side effect happened once, and the record replays it


def test_idempotency_key_outside_a_durable_run_says_where_it_works() -> None:
    with pytest.raises(CrewDurableError, match="inside a tool step"):
        idempotency_key()


@pytest.mark.filterwarnings("ignore::crew_durable.LateDefinitionWarning")
def test_tool_steps_are_checked_and_never_wrap_a_durable_tool_twice() -> None:
    def agent() -> Agent:
        tools = [calculator.multiplier, calculator.adder, payments.SendReceipt()]
        return Agent(role="Checker", goal="g", backstory="b", tools=tools, llm=fake_llm())

    with pytest.raises(ValueError, match="does not have"):
        DBOSAgent(agent_name=f"steps-{uuid.uuid4()}", orig_agent=agent(), tool_steps=["nope"])
    with pytest.raises(ValueError, match="should_retry"):
        DBOSAgent(
            agent_name=f"steps-{uuid.uuid4()}",
            orig_agent=agent(),
            tool_steps={"adder": StepConfig(retries_allowed=True)},
        )
    everything = DBOSAgent(agent_name=f"steps-{uuid.uuid4()}", orig_agent=agent(), tool_steps=True)
    multiplier, adder, receipt = everything.tools
    assert multiplier is calculator.multiplier  # already a @DBOS.step
    assert isinstance(adder, DBOSTool) and isinstance(receipt, DBOSTool)
    copied = everything.copy()
    assert [type(t) for t in copied.tools] == [type(t) for t in everything.tools]
    assert not isinstance(copied.tools[1].wrapped, DBOSTool)


def test_a_charge_in_flight_at_the_kill_is_applied_once(system_database: Database, tmp_path: Path) -> None:
    harness = Harness(system_database, tmp_path)
    workflow_id = f"pay-{uuid.uuid4()}"
    harness.run_until_killed("payments", "ada", workflow_id, pause_in_tool="charge_card:charged")
    assert ledger.count(harness.ledger, "charge_applied") == 1  # charged, but the step was not recorded
    report = harness.run("recover", "payments", "ada", workflow_id)

    assert report["result"] == ADA
    assert ledger.count(harness.ledger, "charge_attempt") == 3  # ran again after the kill, same key
    assert ledger.count(harness.ledger, "charge_applied") == 1  # the service saw the key again
    assert ledger.count(harness.ledger, "send_receipt") == 1
