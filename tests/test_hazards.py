"""Deliberate answers to what crewAI does around a run: human feedback, time limits,
event handlers that are DBOS steps."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from crewai.events.event_bus import crewai_event_bus
from crewai.events.types.llm_events import LLMCallCompletedEvent
from dbos import DBOS, SetWorkflowID

from crew_durable import CrewDurableError
from tests.support import ledger
from tests.support.apps import calculator, reviewer
from tests.support.cassettes import played, replay
from tests.support.databases import Database
from tests.support.processes import Harness


def test_human_feedback_answers_are_steps(launched: Database, side_effects: Path) -> None:
    workflow_id = f"slogan-{uuid.uuid4()}"
    with replay("reviewer.slogan"), SetWorkflowID(workflow_id):
        assert reviewer.slogan() == "Crash. Resume."

    names = [s["function_name"] for s in DBOS.list_workflow_steps(workflow_id)]
    assert names == ["reviewed_writer.llm", "reviewed_writer.human_input"] * 2
    assert ledger.count(side_effects, "human_answer") == 2


def test_a_recovered_run_does_not_ask_again_what_was_answered(
    system_database: Database, tmp_path: Path
) -> None:
    harness = Harness(system_database, tmp_path)
    workflow_id = f"slogan-{uuid.uuid4()}"
    # Request 2 is the rewrite the first answer asked for.
    harness.run_until_killed("reviewer", "slogan", workflow_id, pause_at_request=2)
    report = harness.run("recover", "reviewer", "slogan", workflow_id)

    assert report["result"] == "Crash. Resume."
    assert ledger.count(harness.ledger, "human_answer") == 2  # not 3: the first answer was replayed


def test_a_run_past_its_time_limit_is_cancelled_not_left_running(
    launched: Database, side_effects: Path
) -> None:
    workflow_id = f"slow-{uuid.uuid4()}"
    with replay("reviewer.lookup") as cassette, SetWorkflowID(workflow_id):
        with pytest.raises(TimeoutError):
            reviewer.lookup()
        time.sleep(3)  # long enough for the abandoned run to reach its next completion

    assert DBOS.get_workflow_status(workflow_id).status == "CANCELLED"
    assert played(cassette) == 1  # the completion after the slow tool was never requested
    assert ledger.count(side_effects, "slow_lookup") <= 1


def test_an_event_handler_that_is_a_dbos_step_is_refused(launched: Database) -> None:
    with crewai_event_bus.scoped_handlers():

        @crewai_event_bus.on(LLMCallCompletedEvent)
        @DBOS.step()
        def audit(source: object, event: LLMCallCompletedEvent) -> None:
            pass

        with pytest.raises(CrewDurableError, match="event handler"):
            calculator.execute_task()
