"""A sequential crew of two agents whose roles and tasks are filled in from kickoff inputs.

The researcher's task feeds the writer's as context; the writer's output is
a pydantic model. Each agent has a checkpointed tool with a side effect.
"""

from __future__ import annotations

import json
from typing import Any

from crewai import Agent, Crew, Task
from crewai.tools import tool
from dbos import DBOS
from pydantic import BaseModel

from crew_durable import DBOSCrew
from crew_durable._outputs import crew_output_to_json
from tests.support import kill_points, ledger
from tests.support.cassettes import fake_llm
from tools.fake_openai import tool_call

INPUTS = {"topic": "durable execution"}


class Article(BaseModel):
    title: str
    body: str


@tool
@DBOS.step()
def search_news(query: str) -> str:
    """Search the news archive."""
    ledger.record("search_news", query=query)
    return f"Crashes are common; checkpoints make {query} cheap; recovery resumes work."


@tool
@DBOS.step()
def publish(title: str) -> str:
    """Publish an article under a title; returns its URL."""
    kill_points.tool_started("publish")
    ledger.record("publish", title=title)
    return f"https://news.example/{title.lower().replace(' ', '-')}"


def build_crew() -> Crew:
    """The plain crewAI crew, with LLM objects of its own."""
    researcher = Agent(
        role="{topic} researcher",
        goal="Find the key facts about {topic}",
        backstory="You read everything about {topic}.",
        tools=[search_news],
        llm=fake_llm(),
    )
    writer = Agent(
        role="{topic} writer",
        goal="Write a short article about {topic}",
        backstory="You turn research into clear prose.",
        tools=[publish],
        llm=fake_llm(),
    )
    research = Task(description="Research {topic}.", expected_output="Three facts", agent=researcher)
    write = Task(
        description="Write an article about {topic} from the research and publish it.",
        expected_output="The article",
        agent=writer,
        context=[research],
        output_pydantic=Article,
    )
    return Crew(agents=[researcher, writer], tasks=[research, write])


newsroom = DBOSCrew(crew_name="newsroom", orig_crew=build_crew())


def kickoff() -> dict[str, Any]:
    return crew_output_to_json(newsroom.kickoff(inputs=INPUTS))


SCENARIOS = {"kickoff": kickoff}


def brain(body: dict[str, Any]) -> dict[str, Any]:
    system = body["messages"][0]["content"]
    results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
    if "durable execution researcher" in system:
        if not results:
            return {"tool_calls": [tool_call("search_news", {"query": "durable execution"}, "call_search")]}
        return {"content": f"Facts: {results[0]}"}
    if not results:
        return {"tool_calls": [tool_call("publish", {"title": "Durable Execution"}, "call_publish")]}
    article = {
        "title": "Durable Execution",
        "body": f"Published at {results[0]}. Checkpoints make crashes cheap.",
    }
    return {"content": json.dumps(article)}
