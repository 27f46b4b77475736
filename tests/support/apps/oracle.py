"""crewAI's standalone ``Agent.kickoff`` on a DBOSAgent, with a tool step and structured output."""

from __future__ import annotations

import asyncio
from typing import Any

from crewai import Agent
from crewai.tools import tool
from dbos import DBOS
from pydantic import BaseModel

from crew_durable import DBOSAgent
from tests.support import ledger
from tests.support.cassettes import fake_llm
from tools.fake_openai import tool_call


class Forecast(BaseModel):
    city: str
    weather: str


@tool
@DBOS.step()
def look_outside(city: str) -> str:
    """Look at the sky over a city."""
    ledger.record("look_outside", city=city)
    return f"{city}: clear skies"


oracle = DBOSAgent(
    agent_name="oracle",
    orig_agent=Agent(
        role="Oracle", goal="Forecast", backstory="Sees far.", tools=[look_outside], llm=fake_llm()
    ),
)


def kickoff() -> dict[str, Any]:
    output = oracle.kickoff("What is the weather in Oslo?", response_format=Forecast)
    assert isinstance(output.pydantic, Forecast)
    return {
        "raw": output.raw,
        "pydantic": output.pydantic.model_dump(),
        "type": type(output.pydantic).__name__,
    }


def akickoff() -> dict[str, Any]:
    output = asyncio.run(oracle.akickoff("What is the weather in Oslo?", response_format=Forecast))
    return {"raw": output.raw, "type": type(output.pydantic).__name__}


SCENARIOS = {"kickoff": kickoff, "akickoff": akickoff}


def brain(body: dict[str, Any]) -> dict[str, Any]:
    if not any(m["role"] == "tool" for m in body["messages"]):
        return {"tool_calls": [tool_call("look_outside", {"city": "Oslo"}, "call_look")]}
    return {"content": '{"city": "Oslo", "weather": "clear skies"}'}
