"""Retries: crewAI's task retries get ids of their own; LLM steps retry transient errors only."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from crewai import Agent, Task
from dbos import DBOS, SetWorkflowID

from crew_durable import DBOSAgent, RecordedError, StepConfig
from tests.support.apps import rejected
from tests.support.cassettes import FAKE_PORT, fake_llm, played, replay
from tests.support.databases import Database
from tools.fake_openai import FakeHTTPError, serve


def test_a_failed_task_and_its_retry_replay_from_their_records(launched: Database) -> None:
    workflow_id = f"greet-{uuid.uuid4()}"
    with (
        replay("rejected.execute_task") as cassette,
        SetWorkflowID(workflow_id),
        pytest.raises(RecordedError) as first,
    ):
        rejected.execute_task()
    assert played(cassette) == 2  # the attempt and crewAI's one retry (max_retry_limit=1)
    retry = DBOS.get_workflow_status(f"{workflow_id}-retry-1")
    assert retry is not None and retry.status == "ERROR"

    with (
        replay("rejected.execute_task") as cassette,
        SetWorkflowID(workflow_id),
        pytest.raises(RecordedError) as second,
    ):
        rejected.execute_task()

    assert played(cassette) == 0
    assert str(second.value) == str(first.value)
    assert second.value.status_code == first.value.status_code == 401


flaky_counter = {"requests": 0}


def _flaky_brain(fail_with: int, failures: int) -> Any:
    def brain(body: dict[str, Any]) -> dict[str, Any]:
        flaky_counter["requests"] += 1
        if flaky_counter["requests"] <= failures:
            raise FakeHTTPError(fail_with, f"the model says {fail_with}", "server_error")
        return {"content": "Thought: done\nFinal Answer: 42"}

    return brain


flaky = DBOSAgent(
    agent_name="retries.flaky",
    orig_agent=Agent(
        role="Answerer", goal="Answer", backstory="Patient.", llm=fake_llm(max_retries=0), max_retry_limit=0
    ),  # the provider's and crewAI's own retries off: the step's retries are what is measured
    llm_step_config=StepConfig(retries_allowed=True, max_attempts=3, interval_seconds=0.01),
)


@pytest.mark.parametrize(
    ("status", "requests", "succeeds"), [(500, 3, True), (429, 3, True), (401, 1, False)]
)
def test_llm_steps_retry_transient_errors_only_by_default(
    launched: Database, fixed_ports: None, status: int, requests: int, succeeds: bool
) -> None:
    """An LLM that fails twice and then answers; a 401 is not worth a second request."""
    flaky_counter["requests"] = 0
    task = Task(description="Answer.", expected_output="A number", agent=flaky)
    with serve(_flaky_brain(status, failures=2), port=FAKE_PORT), SetWorkflowID(f"flaky-{uuid.uuid4()}"):
        if succeeds:
            assert str(flaky.execute_task(task)) == "42"
        else:
            with pytest.raises(RecordedError, match="401"):
                flaky.execute_task(task)
    assert flaky_counter["requests"] == requests
