"""Human feedback on a task (human_input=True), and an agent that runs past its time limit.

The person reviewing the slogan asks for one change, then accepts; they
answer through CrewClient (``answer``), never on a console.
"""

from __future__ import annotations

import time
from typing import Any

from crewai import Agent, Task
from crewai.tools import tool
from dbos import DBOS

from crew_durable import CrewClient, DBOSAgent, InputRequest
from tests.support import ledger
from tests.support.cassettes import fake_llm
from tools.fake_openai import tool_call


def answer(client: CrewClient, request: InputRequest) -> None:
    """The reviewer: asks for a shorter slogan once, then accepts."""
    feedback = "" if request.message == "Crash. Resume." else "Make it shorter."
    client.send_feedback(request.request_id, feedback)


writer = DBOSAgent(
    agent_name="reviewed_writer",
    orig_agent=Agent(role="Writer", goal="Write slogans", backstory="Punchy.", llm=fake_llm()),
)


@tool
@DBOS.step()
def slow_lookup(query: str) -> str:
    """Look something up in a slow archive."""
    time.sleep(2.5)
    ledger.record("slow_lookup", query=query)
    return "found it"


slowpoke = DBOSAgent(
    agent_name="slowpoke",
    orig_agent=Agent(
        role="Archivist",
        goal="Find things",
        backstory="Patient.",
        tools=[slow_lookup],
        llm=fake_llm(),
        max_execution_time=1,
    ),
)


def slogan() -> str:
    task = Task(
        description="Write a slogan for durable agents.",
        expected_output="A slogan",
        agent=writer,
        human_input=True,
    )
    return str(writer.execute_task(task))


def lookup() -> str:
    task = Task(description="Find the old records.", expected_output="What you found", agent=slowpoke)
    return str(slowpoke.execute_task(task))


SCENARIOS = {"slogan": slogan, "lookup": lookup}


def brain(body: dict[str, Any]) -> dict[str, Any]:
    text = "\n".join(str(m.get("content")) for m in body["messages"])
    if "Find the old records" in text:
        if not any(m["role"] == "tool" for m in body["messages"]):
            return {"tool_calls": [tool_call("slow_lookup", {"query": "old records"}, "call_slow")]}
        return {"content": "Thought: done\nFinal Answer: found it"}
    if "Make it shorter" in text:
        return {"content": "Thought: shorter\nFinal Answer: Crash. Resume."}
    return {"content": "Thought: a first try\nFinal Answer: Agents that crash and resume where they stopped."}
