"""A two-agent crewAI crew made durable with crew_durable.

This is the code a user writes: ordinary crewAI agents, tasks and tools,
wrapped once at module level. ``search_archive`` and ``publish_article`` are
``@DBOS.step`` tools: a finished call is checkpointed and never runs again.
Publishing has a side effect (a line in ``$NEWSROOM_PUBLISHED``), so you can
check that a crash never publishes an article twice.
"""

from __future__ import annotations

import os
import time

from crewai import LLM, Agent, Crew, Task
from crewai.tools import tool
from dbos import DBOS
from pydantic import BaseModel

from crew_durable import DBOSCrew

OFFLINE_BASE_URL = "http://127.0.0.1:8765/v1"
"""Offline, the demo replays cassettes recorded from a local fake at this address."""


def llm() -> LLM:
    """gpt-4o-mini: on OpenAI with a key, else the recorded offline replies."""
    if os.environ.get("OPENAI_API_KEY") and not os.environ.get("NEWSROOM_OFFLINE"):
        return LLM(model="gpt-4o-mini", temperature=0)
    return LLM(model="gpt-4o-mini", temperature=0, base_url=OFFLINE_BASE_URL, api_key="offline-demo")


class Article(BaseModel):
    headline: str
    body: str
    url: str


@tool
@DBOS.step()
def search_archive(query: str) -> str:
    """Search the newspaper's archive for background on a subject."""
    time.sleep(0.5)  # an archive is slow
    return (
        f"Archive notes on {query}: long-running jobs fail part-way; "
        "checkpointing each step lets a job resume after a crash; "
        "re-running finished work costs money and can repeat side effects."
    )


@tool
@DBOS.step()
def publish_article(headline: str, body: str) -> str:
    """Publish an article on the website and return its URL."""
    slug = "-".join(headline.lower().split())[:60]
    url = f"https://news.example.com/{slug}"
    published = os.environ.get("NEWSROOM_PUBLISHED")
    if published:
        with open(published, "a", encoding="utf-8") as log:
            log.write(f"{url}\n")
    return url


researcher = Agent(
    role="{topic} researcher",
    goal="Collect the facts a reporter needs about {topic}",
    backstory="You dig through the archive before anyone writes a word.",
    tools=[search_archive],
    llm=llm(),
)
writer = Agent(
    role="{topic} reporter",
    goal="Write and publish a short, accurate article about {topic}",
    backstory="You write clearly and always publish what you write.",
    tools=[publish_article],
    llm=llm(),
)
research = Task(
    description="Research {topic} in the archive and list the key facts.",
    expected_output="A short list of facts",
    agent=researcher,
)
write = Task(
    description="Write a three-sentence article about {topic} from the research, then publish it.",
    expected_output="The published article with its URL",
    agent=writer,
    context=[research],
    output_pydantic=Article,
)

newsroom = DBOSCrew(
    crew_name="newsroom",
    orig_crew=Crew(agents=[researcher, writer], tasks=[research, write]),
)
