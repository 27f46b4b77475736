"""A three-task crew, each task a tool call between two completions: what fork and cancel act on.

Each agent has a checkpointed tool with a side effect (a ledger line per
real call). The model's answers depend only on the task, so a fork's new
requests can be told apart at the server. ``DELAY`` makes the model slow,
for tests that act on a run in progress.
"""

from __future__ import annotations

import time
from typing import Any

from crewai import Agent, Crew, Task
from crewai.tools import tool
from dbos import DBOS

from crew_durable import DBOSCrew
from tests.support import ledger
from tests.support.cassettes import fake_llm
from tools.fake_openai import tool_call

DELAY = 0.0
STAGES = ("gather", "draft", "publish")


@tool
@DBOS.step()
def act(stage: str) -> str:
    """Do the work of a stage; returns what was done."""
    ledger.record("act", stage=stage)
    return f"{stage} done"


def _agent(stage: str) -> Agent:
    llm = fake_llm()
    return Agent(role=f"{stage} agent", goal=f"Do the {stage}", backstory="Steady.", tools=[act], llm=llm)


agents = [_agent(stage) for stage in STAGES]
trio = DBOSCrew(
    crew_name="trio",
    orig_crew=Crew(
        agents=agents,
        tasks=[
            Task(description=f"Stage: {stage}.", expected_output=f"The {stage}", agent=agent)
            for stage, agent in zip(STAGES, agents, strict=True)
        ],
    ),
)


def stage_of(body: dict[str, Any]) -> str:
    return str(body["messages"][1]["content"]).split("Stage: ", 1)[1].split(".", 1)[0]


def brain(body: dict[str, Any]) -> dict[str, Any]:
    time.sleep(DELAY)
    stage = stage_of(body)
    results = [str(m["content"]) for m in body["messages"] if m["role"] == "tool"]
    if not results:
        return {"tool_calls": [tool_call("act", {"stage": stage}, f"call_{stage}")]}
    return {"content": f"The {stage} is finished: {results[0]}"}
