"""A crew whose first task answers in prose although it must produce JSON (``output_json``).

The counter has a tool, so crewAI does not ask the model for structured
output; it converts the answer afterwards with instructor, which calls the
provider's client directly rather than through the agent's LLM. The second
task reads the converted result as its context.
"""

from __future__ import annotations

import json
from typing import Any

from crewai import Agent, Crew, Task
from crewai.tools import tool
from pydantic import BaseModel

from crew_durable import DBOSCrew
from crew_durable._outputs import crew_output_to_json
from tests.support.cassettes import fake_llm
from tools.fake_openai import tool_call


class Tally(BaseModel):
    winner: str
    votes_for: int
    votes_against: int


@tool
def count_ballots(ballots: str) -> str:
    """Count comma-separated yes/no ballots."""
    votes = [ballot.strip() for ballot in ballots.split(",")]
    return f"yes: {votes.count('yes')}, no: {votes.count('no')}"


def build_crew() -> Crew:
    counter = Agent(
        role="Vote counter", goal="Count votes", backstory="Exact.", tools=[count_ballots], llm=fake_llm()
    )
    herald = Agent(role="Herald", goal="Announce results", backstory="Loud.", llm=fake_llm())
    count = Task(
        description="Count the votes: yes, yes, no, yes.",
        expected_output="The tally",
        agent=counter,
        output_json=Tally,
    )
    announce = Task(description="Announce the result.", expected_output="One sentence", agent=herald)
    return Crew(agents=[counter, herald], tasks=[count, announce])


tally = DBOSCrew(crew_name="tally", orig_crew=build_crew())


def kickoff() -> dict[str, Any]:
    return crew_output_to_json(tally.kickoff())


SCENARIOS = {"kickoff": kickoff}


def brain(body: dict[str, Any]) -> dict[str, Any]:
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice["function"]["name"] == "Tally":  # instructor's request
        arguments = {"winner": "yes", "votes_for": 3, "votes_against": 1}
        return {
            "tool_calls": [
                {
                    "id": "call_tally",
                    "type": "function",
                    "function": {"name": "Tally", "arguments": json.dumps(arguments)},
                }
            ]
        }
    system = str(body["messages"][0]["content"])
    counted = [m["content"] for m in body["messages"] if m["role"] == "tool"]
    if "Vote counter" in system and not counted:
        return {"tool_calls": [tool_call("count_ballots", {"ballots": "yes, yes, no, yes"}, "call_count")]}
    if "Vote counter" in system:
        return {"content": "Yes won, three votes to one."}
    return {"content": "Thought: done\nFinal Answer: Hear ye: the ayes have it, 3 to 1!"}
