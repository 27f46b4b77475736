"""The chaos test's crew: every tool has a side effect, recorded in the ledger.

``reserve_stock`` (a ``@DBOS.step``) and ``charge_card`` (made a step with
``tool_steps``) call services that apply each idempotency key once, like
Stripe's. ``send_email`` (a BaseTool made a step) has no key: it records the
workflow and step it ran in. The clerk reserves three items with three
parallel tool calls in one response.
"""

from __future__ import annotations

import json
import time
from typing import Any

from crewai import Agent, Crew, Task
from crewai.tools import BaseTool, tool
from dbos import DBOS
from pydantic import BaseModel

from crew_durable import DBOSAgent, DBOSCrew, idempotency_key
from crew_durable._outputs import crew_output_to_json
from tests.support import kill_points, ledger
from tests.support.cassettes import fake_llm
from tools.fake_openai import tool_call

ITEMS = {"widget": 2, "gadget": 1, "gizmo": 3}
PRICE = {"widget": 5, "gadget": 12, "gizmo": 3}


def apply_once(service: str, key: str, **details: Any) -> None:
    """A remote service that deduplicates by idempotency key: one effect per key.

    The ledger also notes which workflow step asked, so a test can count the
    effects of each step whatever the keys are.
    """
    step = {"workflow": DBOS.workflow_id, "step": DBOS.step_id}
    ledger.record(f"{service}_call", key=key, **step, **details)
    kill_points.tool_started(f"{service}:before")
    if ledger.count_where(ledger.path(), tool=f"{service}_effect", key=key) == 0:
        ledger.record(f"{service}_effect", key=key, **step, **details)
    kill_points.tool_started(f"{service}:after")


@tool
@DBOS.step()
def reserve_stock(item: str, quantity: int) -> str:
    """Reserve stock of an item for the order."""
    time.sleep(0.02)
    apply_once("stock", idempotency_key(), item=item, quantity=quantity)
    return f"reserved {quantity} {item}"


@tool
def charge_card(amount: int) -> str:
    """Charge the customer's card."""
    apply_once("charge", idempotency_key(), amount=amount)
    return f"charged ${amount}"


class EmailInput(BaseModel):
    subject: str


class SendEmail(BaseTool):
    name: str = "send_email"
    description: str = "Email the customer."
    args_schema: type[BaseModel] = EmailInput

    def _run(self, subject: str) -> str:
        kill_points.tool_started("email:before")
        ledger.record("email_sent", workflow=DBOS.workflow_id, step=DBOS.step_id, subject=subject)
        kill_points.tool_started("email:after")
        return "email sent"


clerk = DBOSAgent(
    agent_name="orders.clerk",
    orig_agent=Agent(
        role="Clerk", goal="Reserve stock", backstory="Quick.", tools=[reserve_stock], llm=fake_llm()
    ),
)
cashier = DBOSAgent(
    agent_name="orders.cashier",
    orig_agent=Agent(
        role="Cashier",
        goal="Take payment",
        backstory="Exact.",
        tools=[charge_card, SendEmail()],
        llm=fake_llm(),
    ),
    tool_steps=["charge_card", "send_email"],
)
reserve = Task(
    description="Reserve 2 widgets, 1 gadget and 3 gizmos.", expected_output="What was reserved", agent=clerk
)
bill = Task(
    description="Charge the customer for the reserved items and email a confirmation.",
    expected_output="The receipt",
    agent=cashier,
    context=[reserve],
)
orders = DBOSCrew(crew_name="orders", orig_crew=Crew(agents=[clerk, cashier], tasks=[reserve, bill]))


def kickoff() -> dict[str, Any]:
    return crew_output_to_json(orders.kickoff())


SCENARIOS = {"kickoff": kickoff}


def brain(body: dict[str, Any]) -> dict[str, Any]:
    system = str(body["messages"][0]["content"])
    results = [str(m["content"]) for m in body["messages"] if m["role"] == "tool"]
    if "Clerk" in system:
        if not results:
            calls = [
                tool_call("reserve_stock", {"item": i, "quantity": q}, f"call_{i}") for i, q in ITEMS.items()
            ]
            return {"tool_calls": calls}
        return {"content": "; ".join(results)}
    total = sum(PRICE[item] * quantity for item, quantity in ITEMS.items())
    if not results:
        return {"tool_calls": [tool_call("charge_card", {"amount": total}, "call_charge")]}
    if len(results) == 1:
        return {"tool_calls": [tool_call("send_email", {"subject": f"Receipt: {results[0]}"}, "call_email")]}
    return {"content": json.dumps({"charge": results[0], "email": results[1]})}
