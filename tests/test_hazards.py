"""Deliberate answers to what crewAI does around a run: human feedback, time limits,
event handlers that are DBOS steps, concurrent context summaries."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from crewai.events.event_bus import crewai_event_bus
from crewai.events.types.llm_events import LLMCallCompletedEvent
from crewai.llms.base_llm import BaseLLM
from crewai.llms.context_window import summarize_messages
from dbos import DBOS, SetWorkflowID

from crew_durable import DBOSLLM, CrewDurableError
from tests.support import ledger
from tests.support.apps import calculator, reviewer
from tests.support.cassettes import played, replay
from tests.support.databases import Database
from tests.support.steps import work_steps


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


class ChunkSummariser(BaseLLM):
    """A model with a tiny context window that answers the first chunk's summary last."""

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
        raise NotImplementedError("summaries are asked for concurrently, with acall")

    async def acall(self, messages: Any, *args: Any, **kwargs: Any) -> str:
        part = int(re.findall(r"part (\d)", str(messages))[-1])
        await asyncio.sleep(0.1 * (PARTS - part))  # part 1 finishes last
        return f"<summary>summary of part {part}</summary>"

    def get_context_window_size(self) -> int:
        return SUMMARY_WINDOW


PARTS = 4
SUMMARY_WINDOW = 400
"""Room for the summary prompt and one part of the conversation, not two."""
summariser = DBOSLLM.around(ChunkSummariser(model="chunky"), "hazards.summariser", None)


@DBOS.workflow()
def summarise_conversation() -> str:
    messages: list[Any] = [{"role": "system", "content": "Be brief."}]
    messages += [
        {"role": "user", "content": f"part {n}: " + "lorem ipsum " * 40} for n in range(1, PARTS + 1)
    ]
    summarize_messages(summariser, messages, [], False)
    return str(messages[-1]["content"])


def test_concurrent_context_summaries_are_numbered_in_the_order_of_the_parts(launched: Database) -> None:
    """crewAI summarises the chunks of a long conversation concurrently (asyncio.gather)."""
    workflow_id = f"summaries-{uuid.uuid4()}"
    with SetWorkflowID(workflow_id):
        summary = summarise_conversation()

    parts = [f"summary of part {n}" for n in range(1, PARTS + 1)]
    assert [p in summary for p in parts] == [True] * PARTS
    steps = work_steps(workflow_id)
    assert [json.loads(s["output"])["result"]["value"] for s in steps] == [
        f"<summary>{p}</summary>" for p in parts
    ]

    # A replay of every completion (what a recovering process does) puts each back in its place.
    replayed = DBOS.fork_workflow(workflow_id, len(steps) + 1)
    assert replayed.get_result() == summary
