"""Tools with side effects, made steps with DBOSAgent(tool_steps=...).

``charge_card`` calls a payment service that deduplicates by idempotency
key, like Stripe; its first attempt for a key times out (transient, retried
inside the step). ``send_receipt`` is a BaseTool subclass. ``find_customer``
stays a plain tool. Charging bob is declined: an error the model is told.
"""

from __future__ import annotations

import json
from typing import Any

from crewai import Agent, Task
from crewai.tools import BaseTool, tool
from pydantic import BaseModel

from crew_durable import DBOSAgent, StepConfig, idempotency_key
from tests.support import kill_points, ledger
from tests.support.cassettes import fake_llm
from tools.fake_openai import tool_call


class PaymentService:
    """A payment API that applies each idempotency key once (its state is the ledger file)."""

    @staticmethod
    def charge(key: str, customer: str, amount: int) -> str:
        attempts = ledger.count_where(ledger_path(), tool="charge_attempt", key=key)
        ledger.record("charge_attempt", key=key, customer=customer)
        if customer == "bob":
            raise ValueError("card declined")
        if attempts == 0:
            raise TimeoutError("payment gateway timed out")
        if ledger.count_where(ledger_path(), tool="charge_applied", key=key) == 0:
            ledger.record("charge_applied", key=key, customer=customer, amount=amount)
        kill_points.tool_started("charge_card:charged")
        return f"ch_{customer}_{amount}"


def ledger_path() -> Any:
    import os
    from pathlib import Path

    return Path(os.environ[ledger.ENV])


@tool
def find_customer(name: str) -> str:
    """Find a customer's email address."""
    ledger.record("find_customer", name=name)
    return f"{name}@example.com"


@tool
def charge_card(customer: str, amount: int) -> str:
    """Charge a customer's card; returns the charge id."""
    return PaymentService.charge(idempotency_key(), customer, amount)


class ReceiptInput(BaseModel):
    email: str
    charge: str


class SendReceipt(BaseTool):
    name: str = "send_receipt"
    description: str = "Email a receipt for a charge."
    args_schema: type[BaseModel] = ReceiptInput

    def _run(self, email: str, charge: str) -> str:
        ledger.record("send_receipt", email=email, charge=charge, key=idempotency_key())
        return f"receipt for {charge} sent to {email}"


def is_transient(error: BaseException) -> bool:
    return isinstance(error, TimeoutError)


cashier = DBOSAgent(
    agent_name="cashier",
    orig_agent=Agent(
        role="Cashier",
        goal="Charge customers and send receipts",
        backstory="Careful with money.",
        tools=[find_customer, charge_card, SendReceipt()],
        llm=fake_llm(),
    ),
    tool_steps={
        "charge_card": StepConfig(
            retries_allowed=True, max_attempts=3, interval_seconds=0.01, should_retry=is_transient
        ),
        "send_receipt": StepConfig(),
    },
)


def charge(customer: str) -> str:
    task = Task(
        description=f"Charge {customer} 42 dollars and send a receipt.",
        expected_output="What happened",
        agent=cashier,
    )
    return str(cashier.execute_task(task))


SCENARIOS = {"ada": lambda: charge("ada"), "bob": lambda: charge("bob")}


def brain(body: dict[str, Any]) -> dict[str, Any]:
    user = str(body["messages"][1]["content"])
    customer = "bob" if "bob" in user else "ada"
    results = [str(m["content"]) for m in body["messages"] if m["role"] == "tool"]
    if not results:
        return {"tool_calls": [tool_call("find_customer", {"name": customer}, "call_find")]}
    if len(results) == 1:
        return {"tool_calls": [tool_call("charge_card", {"customer": customer, "amount": 42}, "call_charge")]}
    if "declined" in results[1]:
        return {"content": f"{customer}'s card was declined: {results[1]}"}
    if len(results) == 2:
        receipt = {"email": results[0], "charge": results[1]}
        return {"tool_calls": [tool_call("send_receipt", receipt, "call_receipt")]}
    return {"content": json.dumps({"charged": results[1], "receipt": results[2]})}
