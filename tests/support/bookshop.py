"""A user's crew, as a user would write it, for ``tests/test_testing_module.py``.

Two agents: a clerk checks the stock with a ``@DBOS.step`` tool, a buyer
places the order with a tool made a step by ``tool_steps``. The model is
wherever ``$BOOKSHOP_LLM_URL`` says (the test's fake OpenAI server).
"""

from __future__ import annotations

import json
import os
from typing import Any

from crewai import LLM, Agent, Crew, Task
from crewai.tools import tool
from dbos import DBOS

from crew_durable import DBOSAgent, DBOSCrew
from tests.support import ledger
from tools.fake_openai import tool_call


def llm() -> LLM:
    url = os.environ.get("BOOKSHOP_LLM_URL", "http://127.0.0.1:9/v1")
    return LLM(model="gpt-4o-mini", base_url=url, api_key="sk-bookshop-test")


@tool
@DBOS.step()
def check_stock(title: str) -> str:
    """How many copies of a book are in stock."""
    ledger.record("check_stock", title=title)
    return f"3 copies of {title}"


@tool
def place_order(title: str, copies: int) -> str:
    """Order copies of a book from the publisher; returns the order number."""
    ledger.record("place_order", title=title, copies=copies)
    return f"order 1042: {copies} x {title}"


clerk = Agent(
    role="clerk", goal="Know the stock", backstory="You count books.", tools=[check_stock], llm=llm()
)
buyer = DBOSAgent(
    agent_name="bookshop.buyer",
    orig_agent=Agent(
        role="buyer", goal="Keep books in stock", backstory="You order books.", tools=[place_order], llm=llm()
    ),
    tool_steps=["place_order"],
)
stock = Task(description="Check the stock of {title}.", expected_output="The stock", agent=clerk)
order = Task(
    description="Order 5 more copies of {title} if fewer than 5 are left.",
    expected_output="The order",
    agent=buyer,
    context=[stock],
)
bookshop = DBOSCrew(crew_name="bookshop", orig_crew=Crew(agents=[clerk, buyer], tasks=[stock, order]))


def restock() -> str:
    """What the application calls: the target of the crash tests."""
    return bookshop.kickoff(inputs={"title": "Dune"}).raw


def brain(body: dict[str, Any]) -> dict[str, Any]:
    """The fake model: each agent calls its tool once, then answers with the tool's result."""
    system = str(body["messages"][0]["content"])
    results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
    if "clerk" in system:
        if not results:
            return {"tool_calls": [tool_call("check_stock", {"title": "Dune"}, "call_stock")]}
        return {"content": f"In stock: {results[0]}"}
    if not results:
        arguments = {"title": "Dune", "copies": 5}
        return {"tool_calls": [tool_call("place_order", arguments, "call_order")]}
    return {"content": json.dumps({"ordered": results[0]})}
