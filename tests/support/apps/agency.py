"""A crew whose tool starts another crew: the sub-crew is a child workflow of the tool.

The account manager's ``commission_report`` tool is a ``@DBOS.workflow``
whose body kicks off the ``research_desk`` DBOSCrew. Its analyst's
``fetch_figures`` is a checkpointed step with a side effect, so a kill
inside the sub-crew shows whether its finished steps run again.
"""

from __future__ import annotations

from typing import Any

from crewai import Agent, Crew, Task
from crewai.tools import tool
from dbos import DBOS

from crew_durable import DBOSCrew
from tests.support import kill_points, ledger
from tests.support.cassettes import fake_llm
from tools.fake_openai import tool_call


@tool
@DBOS.step()
def fetch_figures(market: str) -> str:
    """Fetch this quarter's sales figures for a market."""
    kill_points.tool_started("fetch_figures")
    ledger.record("fetch_figures", market=market)
    return f"{market}: 1200 units, up 8%"


def build_research_desk() -> Crew:
    analyst = Agent(
        role="Analyst",
        goal="Report on a market",
        backstory="Numbers first.",
        tools=[fetch_figures],
        llm=fake_llm(),
    )
    report = Task(
        description="Report on the {market} market.", expected_output="A one-line report", agent=analyst
    )
    return Crew(agents=[analyst], tasks=[report])


research_desk = DBOSCrew(crew_name="research_desk", orig_crew=build_research_desk())


@tool
@DBOS.workflow()
def commission_report(market: str) -> str:
    """Have the research desk write a report on a market."""
    ledger.record("commission_report", market=market)
    return research_desk.kickoff(inputs={"market": market}).raw


def build_agency() -> Crew:
    manager = Agent(
        role="Account manager",
        goal="Answer clients with research",
        backstory="Delegates the numbers.",
        tools=[commission_report],
        llm=fake_llm(),
    )
    answer = Task(
        description="Tell the client how Nordics sales went.", expected_output="A reply", agent=manager
    )
    return Crew(agents=[manager], tasks=[answer])


agency = DBOSCrew(crew_name="agency", orig_crew=build_agency())


def kickoff() -> dict[str, Any]:
    return agency.kickoff().model_dump(mode="json")


SCENARIOS = {"kickoff": kickoff}


def brain(body: dict[str, Any]) -> dict[str, Any]:
    system = str(body["messages"][0]["content"])
    results = [str(m["content"]) for m in body["messages"] if m["role"] == "tool"]
    if "Analyst" in system:
        if not results:
            return {"tool_calls": [tool_call("fetch_figures", {"market": "Nordics"}, "call_figures")]}
        return {"content": f"Report: {results[0]}."}
    if not results:
        return {"tool_calls": [tool_call("commission_report", {"market": "Nordics"}, "call_report")]}
    return {"content": f"Dear client, {results[0]}"}
