"""An agent that plans before it acts; two independent steps of its plan run in parallel.

crewAI runs the ready todos of a plan in threads. Each todo calls the
``forecast`` step tool; Oslo's answer is slower than Lima's, so the two
todos' steps interleave in time, and only a fixed range of step ids per
todo keeps a replay's step ids equal to the original's.
"""

from __future__ import annotations

import time
from typing import Any

from crewai import Agent, Task
from crewai.agent.planning_config import PlanningConfig
from crewai.tools import tool
from dbos import DBOS

from crew_durable import DBOSAgent
from tests.support import kill_points, ledger
from tests.support.cassettes import fake_llm
from tools.fake_openai import tool_call

CITIES = ("Oslo", "Lima")
SLOWNESS = {"Oslo": 0.4, "Lima": 0.0}


@tool
@DBOS.step()
def forecast(city: str) -> str:
    """Tomorrow's weather forecast for a city."""
    kill_points.tool_started(f"forecast:{city}")
    time.sleep(SLOWNESS[city])
    ledger.record("forecast", city=city)
    return f"{city}: {'rain' if city == 'Oslo' else 'sun'} tomorrow"


planner = DBOSAgent(
    agent_name="planner",
    orig_agent=Agent(
        role="Travel planner",
        goal="Compare the weather in two cities",
        backstory="Plans first.",
        tools=[forecast],
        llm=fake_llm(),
        planning_config=PlanningConfig(reasoning_effort="low", max_attempts=1),
    ),
)


thrifty_planner = DBOSAgent(
    agent_name="thrifty_planner",
    orig_agent=Agent(
        role="Travel planner",
        goal="Compare the weather in two cities",
        backstory="Plans first.",
        tools=[forecast],
        llm=fake_llm(),
        planning_config=PlanningConfig(reasoning_effort="low", max_attempts=1, llm=fake_llm("gpt-4.1-nano")),
    ),
)
"""The same agent, planning with an LLM of its own (``planning_config.llm``)."""


def compare(agent: DBOSAgent = planner) -> str:
    task = Task(
        description="Compare tomorrow's weather in Oslo and Lima.",
        expected_output="Which city is sunnier",
        agent=agent,
    )
    return str(agent.execute_task(task))


SCENARIOS = {"compare": compare, "compare_thrifty": lambda: compare(thrifty_planner)}

PLAN = {
    "plan": "Get both forecasts, then compare.",
    "steps": [
        {
            "step_number": 1,
            "description": "Get the forecast for Oslo.",
            "tool_to_use": "forecast",
            "depends_on": [],
        },
        {
            "step_number": 2,
            "description": "Get the forecast for Lima.",
            "tool_to_use": "forecast",
            "depends_on": [],
        },
    ],
    "ready": True,
}


def brain(body: dict[str, Any]) -> dict[str, Any]:
    tools = [t["function"]["name"] for t in body.get("tools", [])]
    if "create_reasoning_plan" in tools:
        return {"tool_calls": [tool_call("create_reasoning_plan", PLAN, "call_plan")]}
    system, task = str(body["messages"][0]["content"]), str(body["messages"][1]["content"])
    results = [str(m["content"]) for m in body["messages"] if m["role"] == "tool"]
    for city in CITIES:
        if "ONE specific step" in system and f"forecast for {city}" in task:
            if not results:
                return {"tool_calls": [tool_call("forecast", {"city": city}, f"call_{city.lower()}")]}
            return {"content": results[0]}
    return {"content": "Lima is sunnier: Oslo has rain tomorrow, Lima has sun."}
