"""One response, three tool calls: crewAI runs them in parallel threads.

Each call waits before its checkpointed step, the first call longest, so
without reserved step ids the steps would be numbered in the reverse of
the model's order.
"""

from __future__ import annotations

import time
from typing import Any

from crewai import Agent, Task
from crewai.tools import tool
from dbos import DBOS

from crew_durable import DBOSAgent
from tests.support import kill_points, ledger
from tests.support.cassettes import fake_llm
from tools.fake_openai import tool_call

ITEMS = ["apple", "banana", "cherry"]
PRICES = {"apple": 3, "banana": 1, "cherry": 7}
DELAYS = {"apple": 0.3, "banana": 0.15, "cherry": 0.0}


@DBOS.step()
def fetch_price(item: str, started: float) -> str:
    ledger.record("fetch_price", item=item, started=started, finished=time.monotonic())
    return f"{item} costs ${PRICES[item]}"


@tool
def lookup_price(item: str) -> str:
    """Look up the price of one grocery item, in dollars."""
    started = time.monotonic()
    kill_points.tool_started(f"lookup_price:{item}")
    time.sleep(DELAYS[item])
    return fetch_price(item, started)


shopper = DBOSAgent(
    agent_name="shopper",
    orig_agent=Agent(
        role="Shopper",
        goal="Price a shopping list",
        backstory="You look every price up.",
        tools=[lookup_price],
        llm=fake_llm(),
    ),
)


def execute_task() -> str:
    task = Task(
        description=f"How much do {', '.join(ITEMS)} cost? Look them all up at once.",
        expected_output="The prices",
        agent=shopper,
    )
    return str(shopper.execute_task(task))


SCENARIOS = {"execute_task": execute_task}


def brain(body: dict[str, Any]) -> dict[str, Any]:
    results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
    if not results:
        calls = [tool_call("lookup_price", {"item": item}, f"call_{item}") for item in ITEMS]
        return {"tool_calls": calls}
    return {"content": "; ".join(results)}
