"""A one-task crew for bad input: unicode inputs, big and empty tool results, odd answers.

The writer calls ``fetch_page`` (a tool step chosen with ``tool_steps``,
which records JSON) and ``fetch_blob`` (a ``@DBOS.step`` tool, which DBOS
pickles), then answers what ``brain`` says. The topic decides everything:
``big`` makes both tools return 5 MB, ``empty`` makes them return empty
strings, ``silent`` makes the final answer empty. Served live by the test's fake OpenAI server.
"""

from __future__ import annotations

from typing import Any

from crewai import Agent, Crew, Task
from crewai.tools import tool
from dbos import DBOS

from crew_durable import DBOSAgent, DBOSCrew
from tests.support import kill_points, ledger
from tests.support.cassettes import fake_llm
from tools.fake_openai import tool_call

BIG = 5 * 1024 * 1024


def _content(topic: str, what: str) -> str:
    if topic == "big":
        return (f"{what} ✓ " * (BIG // 8 + 1))[:BIG]
    if topic == "empty":
        return ""
    return f"{what} about {topic}"


@tool
def fetch_page(topic: str) -> str:
    """Fetch the page about a topic."""
    kill_points.tool_started("fetch_page")
    ledger.record("fetch_page", topic=topic[:50])
    return _content(topic, "page")


@tool
@DBOS.step()
def fetch_blob(topic: str) -> str:
    """Fetch the blob about a topic."""
    ledger.record("fetch_blob", topic=topic[:50])
    return _content(topic, "blob")


writer = DBOSAgent(
    agent_name="echo.writer",
    orig_agent=Agent(
        role="Writer", goal="Echo", backstory="Literal.", tools=[fetch_page, fetch_blob], llm=fake_llm()
    ),
    tool_steps=["fetch_page"],
)
crew = DBOSCrew(
    crew_name="echo",
    orig_crew=Crew(
        agents=[writer],
        tasks=[Task(description="Echo the topic: {topic}.", expected_output="The echo", agent=writer)],
    ),
)


def topic_of(body: dict[str, Any]) -> str:
    return str(body["messages"][1]["content"]).split("Echo the topic: ", 1)[1].split(".\n", 1)[0].rstrip(".")


def brain(body: dict[str, Any]) -> dict[str, Any]:
    topic = topic_of(body)
    results = [str(m["content"]) for m in body["messages"] if m["role"] == "tool"]
    if not results:
        return {
            "tool_calls": [
                tool_call("fetch_page", {"topic": topic}, "call_page"),
                tool_call("fetch_blob", {"topic": topic}, "call_blob"),
            ]
        }
    if topic == "silent":
        return {"content": ""}
    sizes = ",".join(str(len(result)) for result in results)
    return {"content": f"Echo of {topic} 🚀: {sizes}"}


def kickoff(topic: str) -> dict[str, Any]:
    output = crew.kickoff(inputs={"topic": topic})
    return {"raw": output.raw, "tasks": [task.raw for task in output.tasks_output]}


SCENARIOS = {
    "unicode": lambda: kickoff('ünïcödé ✓ 中文 🚀 \u200d👩‍💻 "quotes" \\ back'),
    "big": lambda: kickoff("big"),
    "empty": lambda: kickoff("empty"),
    "silent": lambda: kickoff("silent"),
}
