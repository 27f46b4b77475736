"""A crew whose agent's tool comes from an MCP server, made a step with ``tool_steps``.

crewAI lists the server's tools when the task starts and adds them to the
task's tools; the stdio server (``tests/support/mcp_bookings.py``) records
each booking in the ledger, so a test can count how often it really ran.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from crewai import Agent, Crew, Task
from crewai.mcp import MCPServerStdio

from crew_durable import DBOSAgent, DBOSCrew
from crew_durable._outputs import crew_output_to_json
from tests.support import ledger
from tests.support.cassettes import ROOT, fake_llm
from tools.fake_openai import tool_call

# Started through sh so the tool's name, which crewAI derives from the command, is
# the same on every machine (the interpreter's path is not).
BOOKINGS = MCPServerStdio(
    command="sh",
    args=["-c", 'exec "$CREW_DURABLE_PYTHON" -m tests.support.mcp_bookings'],
)


def server_env() -> dict[str, str]:
    """What the server process needs from this one (crewAI passes it only a minimal environment)."""
    env = {"CREW_DURABLE_PYTHON": sys.executable, "PYTHONPATH": str(ROOT)}
    if ledger.ENV in os.environ:
        env[ledger.ENV] = os.environ[ledger.ENV]
    return env


BOOKINGS.env = server_env()

concierge = DBOSAgent(
    agent_name="concierge",
    orig_agent=Agent(
        role="Concierge",
        goal="Book rooms for guests",
        backstory="Attentive.",
        mcps=[BOOKINGS],
        llm=fake_llm(),
    ),
    tool_steps=["book_room"],  # the name the MCP server gives the tool
)


def build_crew() -> Crew:
    book = Task(description="Book a room for Ada.", expected_output="The booking reference", agent=concierge)
    return Crew(agents=[concierge], tasks=[book])


front_desk = DBOSCrew(crew_name="front_desk", orig_crew=build_crew())


def kickoff() -> dict[str, Any]:
    BOOKINGS.env = server_env()
    return crew_output_to_json(front_desk.kickoff())


SCENARIOS = {"kickoff": kickoff}


def brain(body: dict[str, Any]) -> dict[str, Any]:
    results = [str(m["content"]) for m in body["messages"] if m["role"] == "tool"]
    if not results:
        [name] = [
            t["function"]["name"]
            for t in body["tools"]
            if "Book a hotel room" in t["function"]["description"]
        ]
        return {"tool_calls": [tool_call(name, {"guest": "Ada"}, "call_book")]}
    return {"content": f"Booked: {results[0]}"}
