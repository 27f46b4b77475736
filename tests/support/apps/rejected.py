"""An agent whose provider rejects its API key (HTTP 401) on every request."""

from __future__ import annotations

from typing import Any

from crewai import Agent, Task

from crew_durable import DBOSAgent
from tests.support.cassettes import API_KEY, fake_llm
from tools.fake_openai import FakeHTTPError

rejected = DBOSAgent(
    agent_name="rejected",
    orig_agent=Agent(
        role="Greeter",
        goal="Greet people",
        backstory="Friendly.",
        llm=fake_llm(),
        max_retry_limit=1,
    ),
)


def execute_task() -> str:
    task = Task(description="Say hello.", expected_output="A greeting", agent=rejected)
    return str(rejected.execute_task(task))


SCENARIOS = {"execute_task": execute_task}


def brain(body: dict[str, Any]) -> dict[str, Any]:
    masked = f"{API_KEY[:8]}{'*' * 20}{API_KEY[-4:]}"
    raise FakeHTTPError(401, f"Incorrect API key provided: {masked}.", "invalid_request_error")
