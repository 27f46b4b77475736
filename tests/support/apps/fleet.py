"""A one-task crew that ships an order, for runs spread over worker processes.

``ship`` is a checkpointed tool with a side effect (a ledger line per real
call, with its idempotency key), so a test can count what ran twice. The
model takes a moment to answer, as models do, so runs overlap.
"""

from __future__ import annotations

import os
import time
from typing import Any

from crewai import Agent, Crew, Task
from crewai.tools import tool
from dbos import DBOS

from crew_durable import DBOSCrew, idempotency_key
from tests.support import ledger
from tests.support.cassettes import fake_llm
from tools.fake_openai import tool_call


@tool
@DBOS.step()
def ship(order: str) -> str:
    """Ship an order; returns the tracking number."""
    ledger.record("ship", order=order, key=idempotency_key())
    return f"track-{order}"


VERSION_2 = bool(os.environ.get("FLEET_VERSION_2"))
"""A deploy of new code: another backstory, and a workflow of the application's own (new source)."""

if VERSION_2:

    @DBOS.workflow(name="fleet.audit")
    def audit(order: str) -> str:
        return f"audited {order}"


backstory = "Quick, and audited." if VERSION_2 else "Quick."
shipper = Agent(role="Shipper", goal="Ship orders", backstory=backstory, tools=[ship], llm=fake_llm())
fleet = DBOSCrew(
    crew_name="fleet",
    orig_crew=Crew(
        agents=[shipper],
        tasks=[Task(description="Ship order {order}.", expected_output="The tracking number", agent=shipper)],
    ),
)


def brain(body: dict[str, Any]) -> dict[str, Any]:
    time.sleep(0.05)
    order = str(body["messages"][1]["content"]).split("Ship order ", 1)[1].split(".", 1)[0]
    results = [str(m["content"]) for m in body["messages"] if m["role"] == "tool"]
    if not results:
        return {"tool_calls": [tool_call("ship", {"order": order}, "call_ship")]}
    return {"content": f"Shipped {order}: {results[0]}"}
