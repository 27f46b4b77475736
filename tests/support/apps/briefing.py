"""A crew that crewAI plans before it runs (``Crew(planning=True)``).

crewAI's planner agent writes a plan for each task and appends it to the
task's description; a recovered kickoff must read the recorded plan, not
ask for a new one. The scout's ``look_up`` is a step with a side effect.
"""

from __future__ import annotations

import json
from typing import Any

from crewai import Agent, Crew, Task
from crewai.tools import tool
from dbos import DBOS

from crew_durable import DBOSCrew
from tests.support import kill_points, ledger
from tests.support.cassettes import fake_llm
from tools.fake_openai import tool_call

PLANS = {
    1: "Look up the launch date with look_up, then state it.",
    2: "Write one sentence from the scout's answer.",
}


@tool
@DBOS.step()
def look_up(question: str) -> str:
    """Look up a fact."""
    kill_points.tool_started("look_up")
    ledger.record("look_up", question=question)
    return "The launch is on 3 March."


def build_crew() -> Crew:
    scout = Agent(role="Scout", goal="Find facts", backstory="Quick.", tools=[look_up], llm=fake_llm())
    writer = Agent(role="Writer", goal="Write briefings", backstory="Terse.", llm=fake_llm())
    find = Task(description="Find the launch date.", expected_output="A date", agent=scout)
    write = Task(description="Write a one-line briefing.", expected_output="One sentence", agent=writer)
    return Crew(agents=[scout, writer], tasks=[find, write], planning=True, planning_llm=fake_llm())


briefing = DBOSCrew(crew_name="briefing", orig_crew=build_crew())


def kickoff() -> dict[str, Any]:
    return briefing.kickoff().model_dump(mode="json")


SCENARIOS = {"kickoff": kickoff}


def brain(body: dict[str, Any]) -> dict[str, Any]:
    system = str(body["messages"][0]["content"])
    results = [str(m["content"]) for m in body["messages"] if m["role"] == "tool"]
    if "Task Execution Planner" in system:
        plans = [{"task_number": n, "task": f"Task {n}", "plan": plan} for n, plan in PLANS.items()]
        return {"content": json.dumps({"list_of_plans_per_task": plans})}
    if "Scout" in system:
        if not results:
            return {"tool_calls": [tool_call("look_up", {"question": "launch date"}, "call_look_up")]}
        return {"content": results[0]}
    return {"content": "Briefing: we launch on 3 March."}
