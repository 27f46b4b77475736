"""DBOSLLM: what crewAI relies on in the LLM still holds when completions are steps."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from crewai import Agent
from crewai.hooks.llm_hooks import register_before_llm_call_hook, unregister_before_llm_call_hook
from crewai.llms.base_llm import LLMCallBlockedError
from crewai.llms.providers.openai.completion import OpenAICompletion
from dbos import DBOS, SetWorkflowID

from crew_durable import DBOSLLM, DBOSAgent, RecordedError
from tests.support import ledger
from tests.support.apps import archivist, calculator, text_calculator
from tests.support.cassettes import API_KEY, BASE_URL, played, replay
from tests.support.databases import Database
from tests.support.steps import work_steps


def test_stop_words_and_the_function_calling_llm_work_inside_steps(launched: Database) -> None:
    """The model invents "Observation: 999" and a final answer; the stop word cuts it off."""
    workflow_id = f"react-{uuid.uuid4()}"
    with replay("text_calculator.execute_task") as cassette, SetWorkflowID(workflow_id):
        answer = text_calculator.execute_task()

    assert answer == "12"
    assert played(cassette) == 3
    steps = work_steps(workflow_id)
    assert [s["function_name"] for s in steps] == [
        "text_calculator.llm",
        "text_calculator.function_calling_llm",
        "multiplier",
        "text_calculator.llm",
    ]
    first = json.loads(steps[0]["output"])["result"]["value"]
    assert first.endswith("Action Input: three and four")  # recorded as the provider returned it
    arguments = json.loads(steps[1]["output"])["result"]
    assert arguments["kind"] == "model"
    assert arguments["value"] == {
        "tool_name": "multiplier",
        "arguments": {"first_number": 3, "second_number": 4},
    }


def test_the_agent_llms_are_durable_wrappers_of_the_original_llms() -> None:
    agent = text_calculator.text_calculator
    assert isinstance(agent.llm, DBOSLLM)
    assert isinstance(agent.function_calling_llm, DBOSLLM)
    assert isinstance(agent.llm.wrapped, text_calculator.TextOnlyLLM)
    assert agent.llm.supports_function_calling() is False
    assert agent.function_calling_llm.supports_function_calling() is True
    assert agent.llm.api == "completions"  # provider settings read through
    fc_llm = agent.function_calling_llm
    # crewAI reads these off the agent's LLM to reach the provider by other means (instructor)
    assert (fc_llm.base_url, fc_llm.api_key) == (fc_llm.wrapped.base_url, fc_llm.wrapped.api_key)
    assert fc_llm.base_url is not None


def test_a_provider_error_is_recorded_as_data_crewai_still_recognises(launched: Database) -> None:
    """crewAI tells a context-window overflow by its message, then summarises and goes on."""
    workflow_id = f"archive-{uuid.uuid4()}"
    with replay("archivist.execute_task") as cassette, SetWorkflowID(workflow_id):
        answer = archivist.execute_task()

    assert answer == ARCHIVIST_ANSWER
    assert played(cassette) == 2
    overflow, summary = work_steps(workflow_id)
    assert isinstance(overflow["error"], RecordedError)
    assert overflow["error"].error_type.endswith("LLMContextLengthExceededError")
    assert "maximum context length" in str(overflow["error"])
    assert archivist.SUMMARY in json.loads(summary["output"])["result"]["value"]


ARCHIVIST_ANSWER = "Agent completed execution but produced no final output."
"""What crewAI 1.15.30 answers after summarising on a context overflow (plain crewAI too)."""


def test_a_streamed_completion_is_one_step_and_streams_only_when_live(launched: Database) -> None:
    from crewai.events.event_bus import crewai_event_bus
    from crewai.events.types.llm_events import LLMStreamChunkEvent

    from tests.support.apps import calculator

    chunks: list[str] = []
    with crewai_event_bus.scoped_handlers():

        @crewai_event_bus.on(LLMStreamChunkEvent)
        def collect(source: object, event: LLMStreamChunkEvent) -> None:
            chunks.append(event.chunk)

        workflow_id = f"stream-{uuid.uuid4()}"
        with replay("calculator.streaming") as cassette, SetWorkflowID(workflow_id):
            assert calculator.streaming() == "17"
        live_chunks = len(chunks)
        with SetWorkflowID(workflow_id):
            assert calculator.streaming() == "17"

    assert played(cassette) == 3
    assert [s["function_name"] for s in work_steps(workflow_id)] == [
        "streaming_calculator.llm",
        "multiplier",
        "streaming_calculator.llm",
        "streaming_calculator.llm",
    ]
    assert live_chunks > 0
    assert len(chunks) == live_chunks  # a recorded completion is not streamed again


class ProviderCountingLLM(OpenAICompletion):
    """A model whose input-token counts come from the provider: one request per count."""

    def get_input_tokens_count(
        self, messages: Any, tools: list[dict[str, Any]] | None = None, response_model: Any = None
    ) -> int:
        ledger.record("count_tokens")
        return 1000


token_counter = DBOSAgent(
    agent_name="token_counter",
    orig_agent=Agent(
        role="Calculator",
        goal="Answer arithmetic questions exactly, using your tools",
        backstory="You never do arithmetic in your head.",
        tools=[calculator.multiplier, calculator.adder],
        llm=ProviderCountingLLM(model="gpt-4o-mini", base_url=BASE_URL, api_key=API_KEY),
    ),
)
"""The calculator, on a model whose token counts are remote: its completions replay the calculator's."""


def test_a_token_count_that_asks_the_provider_is_a_step(launched: Database, side_effects: Path) -> None:
    """crewAI counts the input before each completion to decide whether to compact it."""
    workflow_id = f"counts-{uuid.uuid4()}"
    with replay("calculator.execute_task") as cassette, SetWorkflowID(workflow_id):
        assert str(token_counter.execute_task(calculator.math_task(token_counter))) == "17"
    assert played(cassette) == 3

    names = [s["function_name"] for s in work_steps(workflow_id)]
    count, completion = "token_counter.llm.count_tokens", "token_counter.llm"
    assert set(names) == {count, completion, "multiplier"}
    assert names.count(completion) == 3
    assert [names[i - 1] for i, name in enumerate(names) if name == completion] == [count] * 3
    counted = ledger.count(side_effects, "count_tokens")  # (the provider also counts inside a completion)

    last = max(s["function_id"] for s in DBOS.list_workflow_steps(workflow_id))
    replayed = DBOS.fork_workflow(workflow_id, last + 1)  # every step replayed, as on recovery
    assert str(replayed.get_result()["output"]["value"]) == "17"
    assert ledger.count(side_effects, "count_tokens") == counted


def test_a_local_token_estimate_is_not_a_step(launched: Database) -> None:
    workflow_id = f"estimate-{uuid.uuid4()}"
    with replay("calculator.execute_task"), SetWorkflowID(workflow_id):
        calculator.execute_task()
    assert not [s for s in work_steps(workflow_id) if s["function_name"].endswith("count_tokens")]


@DBOS.workflow()
def ask_directly() -> str:
    """A completion asked for outside the agent loop (as guardrails and planners do)."""
    try:
        return str(calculator.calculator.llm.call([{"role": "user", "content": "What is 3 times 4?"}]))
    except LLMCallBlockedError as error:
        return f"blocked: {error}"


def test_a_hook_that_blocks_a_completion_is_recorded_as_its_decision(launched: Database) -> None:
    """The hook is asked once: a replay raises the recorded decision, whatever the hook says now."""
    asked: list[str] = []

    def block(context: Any) -> bool:
        asked.append("asked")
        return False

    workflow_id = f"hooked-{uuid.uuid4()}"
    register_before_llm_call_hook(block)
    try:
        with SetWorkflowID(workflow_id):
            assert ask_directly() == "blocked: LLM call blocked by before_llm_call hook"
    finally:
        unregister_before_llm_call_hook(block)
    assert asked == ["asked"]

    [step] = work_steps(workflow_id)
    replayed = DBOS.fork_workflow(workflow_id, step["function_id"] + 1)
    assert replayed.get_result() == "blocked: LLM call blocked by before_llm_call hook"
    assert asked == ["asked"]
