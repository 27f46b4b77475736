"""One agent, two tools: a checkpointed ``@DBOS.step`` tool and a plain one."""

from __future__ import annotations

import json
from typing import Any

from crewai import Agent, Task
from crewai.tools import tool
from dbos import DBOS

from crew_durable import DBOSAgent, StepConfig
from tests.support import ledger
from tests.support.cassettes import fake_llm
from tools.fake_openai import tool_call


@tool
@DBOS.step()
def multiplier(first_number: int, second_number: int) -> int:
    """Multiply two numbers."""
    ledger.record("multiplier", args=[first_number, second_number])
    return first_number * second_number


@tool
def adder(first_number: int, second_number: int) -> int:
    """Add two numbers."""
    ledger.record("adder", args=[first_number, second_number])
    return first_number + second_number


calculator = DBOSAgent(
    agent_name="calculator",
    orig_agent=Agent(
        role="Calculator",
        goal="Answer arithmetic questions exactly, using your tools",
        backstory="You never do arithmetic in your head.",
        tools=[multiplier, adder],
        llm=fake_llm(),
        verbose=False,
    ),
    llm_step_config=StepConfig(retries_allowed=True, max_attempts=3, interval_seconds=0.1),
)


streaming_calculator = DBOSAgent(
    agent_name="streaming_calculator",
    orig_agent=Agent(
        role="Calculator",
        goal="Answer arithmetic questions exactly, using your tools",
        backstory="You never do arithmetic in your head.",
        tools=[multiplier, adder],
        llm=fake_llm(stream=True),
        verbose=False,
    ),
)


def math_task(agent: DBOSAgent = calculator) -> Task:
    return Task(description="What is 3 times 4, plus 5?", expected_output="A single number", agent=agent)


def execute_task() -> str:
    return str(calculator.execute_task(math_task()))


async def aexecute_task() -> str:
    return str(await calculator.aexecute_task(math_task()))


def streaming() -> str:
    return str(streaming_calculator.execute_task(math_task(streaming_calculator)))


SCENARIOS = {"execute_task": execute_task, "aexecute_task": aexecute_task, "streaming": streaming}


def brain(body: dict[str, Any]) -> dict[str, Any]:
    """Multiply, then add, then answer: three completions per task."""
    results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
    if not results:
        return {"tool_calls": [tool_call("multiplier", {"first_number": 3, "second_number": 4}, "call_mul")]}
    if len(results) == 1:
        product = int(json.loads(results[0]))
        return {"tool_calls": [tool_call("adder", {"first_number": product, "second_number": 5}, "call_add")]}
    return {"content": results[1]}
