"""A tool result too big for the conversation: crewAI puts it in a file the model reads back by name.

crewAI (1.15) moves a tool result above about 25% of the model's context
window into a temporary file and gives the model its name and a tool to read
it. The model here reads two lines of it and answers with them.
"""

from __future__ import annotations

import re
from typing import Any

from crewai import Agent, Task
from crewai.tools import tool
from dbos import DBOS

from crew_durable import DBOSAgent
from tests.support import ledger
from tests.support.cassettes import fake_llm
from tools.fake_openai import tool_call

LINES = 12_000  # about 40k tokens: over a quarter of gpt-4o-mini's 128k window


@tool
@DBOS.step()
def dump_log() -> str:
    """Dump the whole server log."""
    ledger.record("dump_log")
    return "".join(f"line {n}: event {n * 7 % 1000} at tick {n}\n" for n in range(1, LINES + 1))


clerk = DBOSAgent(
    agent_name="clerk",
    orig_agent=Agent(role="Clerk", goal="Read logs", backstory="Patient.", tools=[dump_log], llm=fake_llm()),
)
task = Task(description="What are the first two lines of the log?", expected_output="Two lines", agent=clerk)


def execute_task() -> str:
    return str(clerk.execute_task(task))


SCENARIOS = {"execute_task": execute_task}

_ARTIFACT = re.compile(r"tool-result-[A-Za-z0-9_-]+/result\.md")


def brain(body: dict[str, Any]) -> dict[str, Any]:
    results = [str(m["content"]) for m in body["messages"] if m["role"] == "tool"]
    if not results:
        return {"tool_calls": [tool_call("dump_log", {}, "call_dump")]}
    if len(results) == 1:
        match = _ARTIFACT.search(results[0])
        assert match is not None, f"no deferred file in: {results[0][:500]}"
        reader = next(t["function"]["name"] for t in body["tools"] if "deferred" in t["function"]["name"])
        arguments = {"file_path": match.group(0), "start_line": 1, "line_count": 2}
        return {"tool_calls": [tool_call(reader, arguments, "call_read")]}
    return {"content": f"The log starts: {results[1].strip()}"}
