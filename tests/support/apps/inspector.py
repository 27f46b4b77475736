"""A crew whose output models are defined inside a function, as crewAI's own tests define them.

``build`` makes the crew: its ``Verdict`` (``output_pydantic``) and
``Tally`` (``output_json``) models are local classes, which no process can
import by path. The inspector looks a number up (a checkpointed tool the
tests can kill a process in) and answers a ``Verdict``; the clerk sums it up
as a ``Tally``. Served live by the test's fake OpenAI server (``brain``).
"""

from __future__ import annotations

import json
from typing import Any

from crewai import Agent, Crew, Task
from crewai.tools import tool
from dbos import DBOS
from pydantic import BaseModel, Field

from crew_durable import DBOSCrew
from tests.support import kill_points, ledger
from tests.support.cassettes import fake_llm
from tools.fake_openai import tool_call


@tool
@DBOS.step()
def look_up(number: int) -> str:
    """Look a number up in the register."""
    kill_points.tool_started("look_up")
    ledger.record("look_up", number=number)
    return f"{number} is registered, twice checked"


def build() -> DBOSCrew:
    class Verdict(BaseModel):
        """What the inspector found."""

        value: int = Field(description="The number inspected")
        reasons: list[str]
        note: str | None = None

    class Tally(BaseModel):
        total: int
        label: str = "tally"

    inspector = Agent(
        role="Inspector", goal="Inspect numbers", backstory="Thorough.", tools=[look_up], llm=fake_llm()
    )
    clerk = Agent(role="Clerk", goal="Sum up", backstory="Tidy.", llm=fake_llm())
    return DBOSCrew(
        crew_name="inspector",
        orig_crew=Crew(
            agents=[inspector, clerk],
            tasks=[
                Task(
                    description="Inspect 7 ✓ (ünïcödé 🚀).",
                    expected_output="A verdict",
                    agent=inspector,
                    output_pydantic=Verdict,
                ),
                Task(
                    description="Sum up the verdict.",
                    expected_output="A tally",
                    agent=clerk,
                    output_json=Tally,
                ),
            ],
        ),
    )


crew = build()


def kickoff() -> dict[str, Any]:
    output = crew.kickoff(inputs={})
    return describe(output)


def describe(output: Any) -> dict[str, Any]:
    verdict, tally = output.tasks_output
    return {
        "raw": output.raw,
        "verdict_type": type(verdict.pydantic).__qualname__,
        "verdict": verdict.pydantic.model_dump(),
        "tally": tally.json_dict,
        "crew_json": output.json_dict,
    }


SCENARIOS = {"kickoff": kickoff}


def brain(body: dict[str, Any]) -> dict[str, Any]:
    task = str(body["messages"][1]["content"])
    results = [str(m["content"]) for m in body["messages"] if m["role"] == "tool"]
    if "Inspect 7" in task:
        if not results:
            return {"tool_calls": [tool_call("look_up", {"number": 7}, "call_look_up")]}
        return {"content": json.dumps({"value": 7, "reasons": [results[0], "emoji 🚀 kept"], "note": "✓"})}
    return {"content": json.dumps({"total": 7, "label": "sum ✓"})}
