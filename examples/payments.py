"""A crew with people in the loop: a payment that waits for approval, a note that waits for review.

The code a user writes: crewAI agents and tasks, wrapped once at module
level. ``charge_card`` may only run once a person approves that exact call
(``approval_required``); the receipt note is reviewed by a person
(``human_input=True``). Both agents stream their answers.

Offline (no ``OPENAI_API_KEY``), the LLMs talk to ``OFFLINE_BASE_URL``,
where ``examples.web_console`` serves :func:`offline_brain`, a scripted
model, so the example runs anywhere.
"""

from __future__ import annotations

import json
import os
from typing import Any

from crewai import LLM, Agent, Crew, Task
from crewai.tools import tool

from crew_durable import DBOSAgent, DBOSCrew, idempotency_key

OFFLINE_PORT = 8766
OFFLINE_BASE_URL = f"http://127.0.0.1:{OFFLINE_PORT}/v1"


def llm() -> LLM:
    """gpt-4o-mini on OpenAI with a key, else the local scripted model; streaming either way."""
    if os.environ.get("OPENAI_API_KEY"):
        return LLM(model="gpt-4o-mini", temperature=0, stream=True)
    return LLM(model="gpt-4o-mini", base_url=OFFLINE_BASE_URL, api_key="offline-example", stream=True)


@tool
def charge_card(customer: str, amount: int) -> str:
    """Charge a customer's card in dollars; returns the charge id."""
    # A real payment API takes the key and applies a charge once per key.
    return f"ch_{customer}_{amount}_{abs(hash(idempotency_key())) % 10_000:04d}"


cashier = DBOSAgent(
    agent_name="payments.cashier",
    orig_agent=Agent(
        role="Cashier",
        goal="Charge customers exactly what they owe",
        backstory="You never charge without a reason.",
        tools=[charge_card],
        llm=llm(),
    ),
    approval_required=["charge_card"],  # each call waits for a person's decision
)
writer = DBOSAgent(
    agent_name="payments.writer",
    orig_agent=Agent(
        role="Writer",
        goal="Write short, warm receipt notes",
        backstory="You write the notes customers read.",
        llm=llm(),
    ),
)

charge = Task(
    description="Charge {customer} {amount} dollars.", expected_output="The charge id", agent=cashier
)
note = Task(
    description="Write a one-line receipt note for {customer}.",
    expected_output="The note",
    agent=writer,
    context=[charge],
    human_input=True,  # a person reviews the note, as long as it takes
)
payments = DBOSCrew(crew_name="payments", orig_crew=Crew(agents=[cashier, writer], tasks=[charge, note]))


def offline_brain(body: dict[str, Any]) -> dict[str, Any]:
    """The scripted model the example uses without an API key."""
    messages = body["messages"]
    task = str(messages[1]["content"])
    text = "\n".join(str(m.get("content")) for m in messages)
    if "Charge " in task:
        results = [str(m["content"]) for m in messages if m["role"] == "tool"]
        if not results:
            customer = task.split("Charge ", 1)[1].split()[0]
            amount = int(task.split("Charge ", 1)[1].split()[1])
            call = {"name": "charge_card", "arguments": json.dumps({"customer": customer, "amount": amount})}
            return {"tool_calls": [{"id": "call_charge", "type": "function", "function": call}]}
        return {"content": f"Charged: {results[-1]}"}
    feedback = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("User feedback: ")]
    if feedback:
        revised = f"Thank you for your payment! (Revised: {feedback[-1]})"
        return {"content": f"Thought: revised as asked\nFinal Answer: {revised}"}
    return {"content": "Thought: a first note\nFinal Answer: Thanks for your payment."}
