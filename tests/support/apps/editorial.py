"""A crew that uses more of crewAI: two async tasks, output_json, a function guardrail,
a conditional task with an LLM guardrail, and task callbacks (one of them a DBOS step).
"""

from __future__ import annotations

import json
from typing import Any

from crewai import Agent, Crew, Task
from crewai.tasks.conditional_task import ConditionalTask
from crewai.tasks.task_output import TaskOutput
from crewai.tools import tool
from dbos import DBOS
from pydantic import BaseModel

from crew_durable import DBOSCrew
from tests.support import ledger
from tests.support.cassettes import fake_llm
from tools.fake_openai import tool_call


class Summary(BaseModel):
    title: str
    points: list[str]


@tool
@DBOS.step()
def search(query: str) -> str:
    """Search for facts about a subject."""
    ledger.record("search", query=query)
    return f"{query} is getting cheaper every year."


def at_least_two_points(output: TaskOutput):  # crewAI rejects a string annotation here
    points = json.loads(output.raw)["points"]
    return (len(points) >= 2, output.raw) if len(points) >= 2 else (False, "Give at least two points.")


def log_task(output: TaskOutput) -> None:
    """A plain callback: it fires again for finished tasks when a crew is recovered."""
    ledger.record("task_callback", task=output.name)


@DBOS.step()
def log_headline(output: TaskOutput) -> None:
    """A callback that is a DBOS step: recorded once, not run again on recovery."""
    ledger.record("headline_callback", headline=output.raw)


def build_crew() -> Crew:
    # One researcher per async task: plain crewAI cannot run one agent's tasks concurrently.
    solar_researcher = Agent(
        role="Solar researcher", goal="Find facts", backstory="Thorough.", tools=[search], llm=fake_llm()
    )
    wind_researcher = Agent(
        role="Wind researcher", goal="Find facts", backstory="Thorough.", tools=[search], llm=fake_llm()
    )
    editor = Agent(role="Editor", goal="Summarise and title", backstory="Concise.", llm=fake_llm())
    solar = Task(
        description="Research solar power.",
        expected_output="A fact",
        agent=solar_researcher,
        async_execution=True,
    )
    wind = Task(
        description="Research wind power.",
        expected_output="A fact",
        agent=wind_researcher,
        async_execution=True,
    )
    summary = Task(
        description="Summarise the research.",
        expected_output="A title and points",
        agent=editor,
        context=[solar, wind],
        output_json=Summary,
        guardrail=at_least_two_points,
    )
    headline = ConditionalTask(
        description="Write a headline for the summary.",
        expected_output="A headline",
        agent=editor,
        condition=lambda previous: len((previous.json_dict or {}).get("points", [])) >= 2,
        guardrail="The headline must be under ten words.",
        callback=log_headline,
    )
    return Crew(
        agents=[solar_researcher, wind_researcher, editor],
        tasks=[solar, wind, summary, headline],
        task_callback=log_task,
    )


editorial = DBOSCrew(crew_name="editorial", orig_crew=build_crew())


def kickoff() -> dict[str, Any]:
    return editorial.kickoff().model_dump(mode="json")


SCENARIOS = {"kickoff": kickoff}


def brain(body: dict[str, Any]) -> dict[str, Any]:
    system = str(body["messages"][0]["content"])
    user = "\n".join(str(m.get("content")) for m in body["messages"][1:])
    results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
    if "researcher" in system:
        subject = "solar power" if "solar" in user else "wind power"
        if not results:
            return {"tool_calls": [tool_call("search", {"query": subject}, f"call_{subject[:4]}")]}
        return {"content": results[0]}
    if "Guardrail Agent" in system:
        return {"content": json.dumps({"valid": True, "feedback": None})}
    if "headline" in user:
        return {"content": "Thought: done\nFinal Answer: Clean power keeps getting cheaper"}
    summary = {"title": "Cheaper clean power", "points": ["Solar is cheaper.", "Wind is cheaper."]}
    if "response_format" in body:
        return {"content": json.dumps(summary)}
    return {"content": f"Thought: done\nFinal Answer: {json.dumps(summary)}"}
