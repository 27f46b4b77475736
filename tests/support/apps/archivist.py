"""An agent whose first request overflows the model's context window.

crewAI recognises the provider's error by its message, summarises the
conversation with a second completion, and retries: a recovered run must
replay the recorded error as the same kind of error to take the same path.
"""

from __future__ import annotations

from typing import Any

from crewai import Agent, Task
from crewai.utilities.i18n import I18N_DEFAULT

from crew_durable import DBOSAgent
from tests.support.cassettes import fake_llm
from tools.fake_openai import FakeHTTPError

SUMMARY = "The user asks what 3 times 4 is."

archivist = DBOSAgent(
    agent_name="archivist",
    orig_agent=Agent(
        role="Archivist",
        goal="Answer from a long record",
        backstory="You keep long records.",
        llm=fake_llm(),
        respect_context_window=True,
    ),
)


def execute_task() -> str:
    task = Task(description="What is 3 times 4?", expected_output="A single number", agent=archivist)
    return str(archivist.execute_task(task))


SCENARIOS = {"execute_task": execute_task}


def brain(body: dict[str, Any]) -> dict[str, Any]:
    contents = [str(m.get("content")) for m in body["messages"]]
    if contents[0] == I18N_DEFAULT.slice("summarizer_system_message"):
        return {"content": f"<summary>{SUMMARY}</summary>"}
    if any(SUMMARY in content for content in contents):
        return {"content": "Thought: I now know the final answer\nFinal Answer: 12"}
    raise FakeHTTPError(
        400,
        "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in 131072 tokens. Please reduce the length of the messages.",
    )
