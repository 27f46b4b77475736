"""People in the loop: a charge that waits for approval, then a receipt note that waits for review.

The cashier's ``charge_card`` needs a person's approval before each call
(``approval_required``); the writer's task has ``human_input=True``. Both
LLMs stream, so the run's stream carries tokens. The person of each
scenario approves ada's charge and denies bob's ("over budget"), asks for
one change to the note ("Mention the amount.") and then accepts it.
"""

from __future__ import annotations

import json
from typing import Any

from crewai import Agent, Crew, Task
from crewai.tools import tool

from crew_durable import CrewClient, DBOSAgent, DBOSCrew, InputRequest, idempotency_key
from crew_durable._outputs import crew_output_to_json
from tests.support import ledger
from tests.support.cassettes import fake_llm
from tools.fake_openai import tool_call


@tool
def charge_card(customer: str, amount: int) -> str:
    """Charge a customer's card; returns the charge id."""
    ledger.record("charge", customer=customer, amount=amount, key=idempotency_key())
    return f"ch_{customer}_{amount}"


def plain_cashier() -> Agent:
    return Agent(
        role="Cashier",
        goal="Charge customers",
        backstory="Careful.",
        tools=[charge_card],
        llm=fake_llm(stream=True),
    )


def plain_writer() -> Agent:
    return Agent(role="Writer", goal="Write receipts", backstory="Warm.", llm=fake_llm(stream=True))


cashier = DBOSAgent(
    agent_name="checkout.cashier", orig_agent=plain_cashier(), approval_required=["charge_card"]
)
writer = DBOSAgent(agent_name="checkout.writer", orig_agent=plain_writer())


def build_crew() -> Crew:
    charge = Task(
        description="Charge {customer} {amount} dollars.", expected_output="The charge", agent=cashier
    )
    note = Task(
        description="Write a one-line receipt note for {customer}.",
        expected_output="The note",
        agent=writer,
        context=[charge],
        human_input=True,
    )
    return Crew(agents=[cashier, writer], tasks=[charge, note])


checkout = DBOSCrew(crew_name="checkout", orig_crew=build_crew())

# The same crew, whose people have one second to answer: nobody does.
hurried_cashier = DBOSAgent(
    agent_name="hurried.cashier",
    orig_agent=plain_cashier(),
    approval_required=["charge_card"],
    input_timeout=1,
)
hurried_writer = DBOSAgent(agent_name="hurried.writer", orig_agent=plain_writer(), input_timeout=1)
hurried = DBOSCrew(
    crew_name="hurried",
    orig_crew=Crew(
        agents=[hurried_cashier, hurried_writer],
        tasks=[
            Task(
                description="Charge {customer} {amount} dollars.",
                expected_output="The charge",
                agent=hurried_cashier,
            ),
            Task(
                description="Write a one-line receipt note for {customer}.",
                expected_output="The note",
                agent=hurried_writer,
                human_input=True,
            ),
        ],
    ),
)

ADA = {"customer": "ada", "amount": 42}
BOB = {"customer": "bob", "amount": 5000}


def ada() -> dict[str, Any]:
    return crew_output_to_json(checkout.kickoff(inputs=ADA))


def bob() -> dict[str, Any]:
    return crew_output_to_json(checkout.kickoff(inputs=BOB))


def unanswered() -> dict[str, Any]:
    return crew_output_to_json(hurried.kickoff(inputs=ADA))


SCENARIOS = {"ada": ada, "bob": bob, "unanswered": unanswered}


def answer(client: CrewClient, request: InputRequest) -> None:
    """The person: approves ada's charge, denies bob's; asks once for the amount in the note."""
    if request.agent.startswith("hurried."):
        return  # nobody answers the hurried crew
    if request.kind == "approval":
        assert request.arguments is not None
        if request.arguments["customer"] == "bob":
            client.deny(request.request_id, reason="over budget")
        else:
            client.approve(request.request_id)
    elif "dollars" in request.message or "Not charged" in request.message:
        client.send_feedback(request.request_id, "")
    else:
        client.send_feedback(request.request_id, "Mention the amount.")


def brain(body: dict[str, Any]) -> dict[str, Any]:
    messages = body["messages"]
    text = "\n".join(str(m.get("content")) for m in messages)
    customer = "bob" if "bob" in text else "ada"
    if "Charge" in str(messages[1]["content"]):
        results = [str(m["content"]) for m in messages if m["role"] == "tool"]
        if not results:
            amount = 5000 if customer == "bob" else 42
            args = {"customer": customer, "amount": amount}
            return {"tool_calls": [tool_call("charge_card", args, "call_charge")]}
        if "did not approve" in results[0]:
            return {"content": f"Not charged: {results[0].split(': ', 1)[1]}"}
        return {"content": json.dumps({"charge": results[0]})}
    if "Not charged" in text:
        return {"content": f"Thought: nothing charged\nFinal Answer: Sorry {customer}, Not charged."}
    if "Mention the amount" in text:
        return {
            "content": f"Thought: with the amount\nFinal Answer: Thank you, {customer}: 42 dollars received."
        }
    return {"content": f"Thought: a first note\nFinal Answer: Thank you, {customer}!"}
