"""crewAI's own recording of parallel native tool calls, replayed through DBOSCrew.

Built exactly as lib/crewai/tests/agents/test_native_tool_calling.py::
TestOpenAINativeToolCalling::test_openai_parallel_native_tool_calling_test_crew
(gpt-5-nano asks for three local searches in one response; each takes a
second). The recording is read from ../shared/cassettes/crewai/ and matched
by URI in order, as crewAI's suite replays it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from crewai import LLM, Agent, Crew, Task
from crewai.tools import BaseTool
from pydantic import BaseModel, Field
from vcr.cassette import Cassette

from crew_durable import DBOSCrew
from tests.support import ledger
from tests.support.cassettes import SHARED_CASSETTES, recorder

RECORDING = (
    SHARED_CASSETTES / "TestOpenAINativeToolCalling.test_openai_parallel_native_tool_calling_test_crew.yaml"
)


class LocalSearchInput(BaseModel):
    query: str = Field(description="Search query")


def _search(name: str, label: str, query: str) -> str:
    start = time.time()
    time.sleep(1.0)
    ledger.record("search", name=name, start=start, end=time.time())
    return f"[{label}] {query}"


class ParallelLocalSearchOne(BaseTool):
    name: str = "parallel_local_search_one"
    description: str = "Local search tool #1 for concurrency testing."
    args_schema: type[BaseModel] = LocalSearchInput

    def _run(self, query: str) -> str:
        return _search(self.name, "one", query)


class ParallelLocalSearchTwo(BaseTool):
    name: str = "parallel_local_search_two"
    description: str = "Local search tool #2 for concurrency testing."
    args_schema: type[BaseModel] = LocalSearchInput

    def _run(self, query: str) -> str:
        return _search(self.name, "two", query)


class ParallelLocalSearchThree(BaseTool):
    name: str = "parallel_local_search_three"
    description: str = "Local search tool #3 for concurrency testing."
    args_schema: type[BaseModel] = LocalSearchInput

    def _run(self, query: str) -> str:
        return _search(self.name, "three", query)


def _parallel_prompt() -> str:
    return (
        "This is a tool-calling compliance test. "
        "In your next assistant turn, emit exactly 3 tool calls in the same response (parallel tool calls), "
        "in this order: "
        "1) parallel_local_search_one(query='latest OpenAI model release notes'), "
        "2) parallel_local_search_two(query='latest Anthropic model release notes'), "
        "3) parallel_local_search_three(query='latest Gemini model release notes'). "
        "Do not call any other tools and do not answer before those 3 tool calls are emitted. "
        "After the tool results return, provide a one paragraph summary."
    )


agent = Agent(
    role="Parallel Tool Agent",
    goal="Use both tools exactly as instructed",
    backstory="You follow tool instructions precisely.",
    tools=[ParallelLocalSearchOne(), ParallelLocalSearchTwo(), ParallelLocalSearchThree()],
    llm=LLM(model="gpt-5-nano", temperature=1),
    verbose=False,
    max_iter=3,
)
task = Task(
    description=_parallel_prompt(), expected_output="A one sentence summary of both tool outputs", agent=agent
)
parallel_crew = DBOSCrew(
    crew_name="conformance.parallel_native_tools", orig_crew=Crew(agents=[agent], tasks=[task])
)


@contextmanager
def cassette() -> Iterator[Cassette]:
    if not RECORDING.exists():
        pytest.skip(f"crewAI's recordings are not available at {SHARED_CASSETTES}")
    with recorder(match_on=("method", "uri")).use_cassette(str(RECORDING)) as played:
        yield played


def kickoff() -> str:
    return parallel_crew.kickoff().raw


SCENARIOS = {"kickoff": kickoff}


def max_concurrency(runs: list[dict[str, Any]]) -> int:
    edges = sorted([(r["start"], 1) for r in runs] + [(r["end"], -1) for r in runs])
    running = peak = 0
    for _, change in edges:
        running += change
        peak = max(peak, running)
    return peak
