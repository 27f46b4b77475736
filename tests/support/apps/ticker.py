"""A crew built with ``Crew(stream=True)``: its kickoff returns crewAI's ``CrewStreamingOutput``."""

from __future__ import annotations

from typing import Any

from crewai import Agent, Crew, Task

from crew_durable import DBOSCrew
from tests.support.cassettes import fake_llm

announcer = Agent(role="Announcer", goal="Announce", backstory="Loud.", llm=fake_llm())
ticker = DBOSCrew(
    crew_name="ticker",
    orig_crew=Crew(
        agents=[announcer],
        tasks=[Task(description="Announce the {event}.", expected_output="One line", agent=announcer)],
        stream=True,
    ),
)


def kickoff() -> dict[str, Any]:
    streaming = ticker.kickoff(inputs={"event": "launch"})
    chunks = [chunk.content for chunk in streaming]
    return {"chunks": chunks, "raw": streaming.result.raw}


SCENARIOS = {"kickoff": kickoff}


def brain(body: dict[str, Any]) -> dict[str, Any]:
    return {"content": "Thought: say it\nFinal Answer: The launch is on, and it is durable."}
