"""A tool that is a ``@DBOS.workflow``: it runs as a child workflow of the agent's run."""

from __future__ import annotations

import json
from typing import Any

from crewai import Agent, Task
from crewai.tools import tool
from dbos import DBOS

from crew_durable import DBOSAgent
from tests.support import ledger
from tests.support.cassettes import fake_llm
from tools.fake_openai import tool_call

RATES = {("EUR", "USD"): 1.25}


@DBOS.step()
def fetch_rate(source: str, target: str) -> float:
    ledger.record("fetch_rate", pair=f"{source}/{target}")
    return RATES[(source, target)]


@DBOS.step()
def book_conversion(amount: float, rate: float) -> float:
    ledger.record("book_conversion", amount=amount)
    return round(amount * rate, 2)


@tool
@DBOS.workflow()
def convert(amount: float, source: str, target: str) -> float:
    """Convert an amount of money between currencies, booking the conversion."""
    return book_conversion(amount, fetch_rate(source, target))


teller = DBOSAgent(
    agent_name="teller",
    orig_agent=Agent(
        role="Teller",
        goal="Convert money for customers",
        backstory="You always book conversions with your tool.",
        tools=[convert],
        llm=fake_llm(),
    ),
)


def execute_task() -> str:
    task = Task(description="Convert 100 EUR to USD.", expected_output="The amount in USD", agent=teller)
    return str(teller.execute_task(task))


SCENARIOS = {"execute_task": execute_task}


def brain(body: dict[str, Any]) -> dict[str, Any]:
    results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
    if not results:
        return {
            "tool_calls": [tool_call("convert", {"amount": 100, "source": "EUR", "target": "USD"}, "call_1")]
        }
    return {"content": f"{json.loads(results[0])} USD"}
