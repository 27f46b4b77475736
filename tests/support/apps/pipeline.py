"""Durable crewAI Flows: two crews with a router between them, and two listeners crewAI runs at once.

``pipeline`` (structured state): ``research`` kicks off the scouts crew, the
router ``review`` picks ``publish`` or ``rework``, and ``publish`` kicks off
the printers crew. Each method adds one to ``state.counter``, so a method run
twice, or a state lost, shows in the result. ``fanout`` (dict state): after
``begin``, the listeners ``left`` and ``right`` each kick off a crew of their
own (crewAI starts them together), and ``join`` waits for both. Every crew's
tool writes a ledger line per real call.
"""

from __future__ import annotations

from typing import Any

from crewai import Agent, Crew, Task
from crewai.flow.flow import Flow, and_, listen, router, start
from crewai.flow.persistence import persist
from crewai.flow.persistence.base import FlowPersistence
from crewai.flow.persistence.sqlite import SQLiteFlowPersistence
from crewai.tools import tool
from dbos import DBOS
from pydantic import BaseModel

from crew_durable import DBOSCrew, DBOSFlow
from tests.support import ledger
from tests.support.cassettes import fake_llm
from tools.fake_openai import tool_call


@tool
@DBOS.step()
def gather(topic: str) -> str:
    """Gather notes on a topic."""
    ledger.record("gather", topic=topic)
    return f"notes on {topic}: ready"


@tool
@DBOS.step()
def print_page(text: str) -> str:
    """Print a page; returns its page number."""
    ledger.record("print_page", text=text)
    return "page 7"


@tool
@DBOS.step()
def fetch(side: str) -> str:
    """Fetch one side's data."""
    ledger.record("fetch", side=side)
    return f"{side.upper()} data"


def _crew(name: str, role: str, description: str, tools: list[Any]) -> DBOSCrew:
    agent = Agent(role=role, goal=f"Do the {role} work", backstory="Careful.", tools=tools, llm=fake_llm())
    task = Task(description=description, expected_output="One line", agent=agent)
    return DBOSCrew(crew_name=name, orig_crew=Crew(agents=[agent], tasks=[task]))


scouts = _crew("pipeline.scouts", "Scout", "Research the topic: {topic}.", [gather])
printers = _crew("pipeline.printers", "Printer", "Print this draft: {draft}.", [print_page])
left_crew = _crew("fanout.left", "Left", "Side: left.", [fetch])
right_crew = _crew("fanout.right", "Right", "Side: right.", [fetch])


class PipelineState(BaseModel):
    id: str = ""
    topic: str = ""
    counter: int = 0
    draft: str = ""
    route: str = ""
    page: str = ""


class ContentFlow(Flow[PipelineState]):
    @start()
    def research(self) -> str:
        self.state.counter += 1
        self.state.draft = scouts.kickoff(inputs={"topic": self.state.topic}).raw
        return self.state.draft

    @router(research)
    def review(self) -> str:
        self.state.counter += 1
        self.state.route = "approved" if "ready" in self.state.draft else "needs_work"
        return self.state.route

    @listen("approved")
    def publish(self) -> dict[str, Any]:
        self.state.counter += 1
        self.state.page = printers.kickoff(inputs={"draft": self.state.draft}).raw
        return {"page": self.state.page, "counter": self.state.counter, "route": self.state.route}

    @listen("needs_work")
    def rework(self) -> dict[str, Any]:
        self.state.counter += 1
        return {"page": None, "counter": self.state.counter, "route": self.state.route}


class FanoutFlow(Flow[dict[str, Any]]):
    @start()
    def begin(self) -> str:
        self.state["counter"] = 1
        return "go"

    @listen(begin)
    def left(self) -> str:
        self.state["counter"] += 1
        self.state["left"] = left_crew.kickoff().raw
        return str(self.state["left"])

    @listen(begin)
    def right(self) -> str:
        self.state["counter"] += 1
        self.state["right"] = right_crew.kickoff().raw
        return str(self.state["right"])

    @listen(and_(left, right))
    def join(self) -> dict[str, Any]:
        self.state["counter"] += 1
        return {"left": self.state["left"], "right": self.state["right"], "counter": self.state["counter"]}


class BesideTheLedger(FlowPersistence):
    """crewAI's SQLite flow persistence in a file beside the test's ledger, shared by its processes.

    The file is only known once the test has set the ledger's path, so each
    call opens it then.
    """

    def init_db(self) -> None:
        pass

    def save_state(self, flow_uuid: str, method_name: str, state_data: Any) -> None:
        sqlite().save_state(flow_uuid, method_name, state_data)

    def load_state(self, flow_uuid: str) -> dict[str, Any] | None:
        return sqlite().load_state(flow_uuid)


def sqlite() -> SQLiteFlowPersistence:
    return SQLiteFlowPersistence(str(ledger.path().parent / "flows.db"))


@persist(BesideTheLedger())  # crewAI's @persist: the state is saved after each method
class ArchiveFlow(Flow[PipelineState]):
    @start()
    def open_file(self) -> str:
        self.state.counter += 1
        return self.state.topic

    @listen(open_file)
    def research(self) -> str:
        self.state.counter += 1
        self.state.draft = scouts.kickoff(inputs={"topic": self.state.topic}).raw
        return self.state.draft

    @listen(research)
    def close_file(self) -> dict[str, Any]:
        self.state.counter += 1
        return {"draft": self.state.draft, "counter": self.state.counter}


pipeline = DBOSFlow(flow_name="pipeline", flow=ContentFlow)
fanout = DBOSFlow(flow_name="fanout", flow=FanoutFlow)
archive = DBOSFlow(flow_name="archive", flow=ArchiveFlow)


def kickoff() -> dict[str, Any]:
    result = pipeline.kickoff(inputs={"topic": "tides"})
    return {"result": result, "state": pipeline.state}


def fan() -> dict[str, Any]:
    result = fanout.kickoff()
    return {"result": result, "state": fanout.state}


def archived() -> dict[str, Any]:
    result = archive.kickoff(inputs={"topic": "tides"})
    return {"result": result, "state": archive.state}


def archived_by_id() -> dict[str, Any]:
    """crewAI's way to resume a persisted flow: kick it off with the state's id."""
    result = archive.kickoff(inputs={"id": "archive-77", "topic": "tides"})
    return {"result": result, "state": archive.state}


SCENARIOS = {"kickoff": kickoff, "fan": fan, "archived": archived, "archived_by_id": archived_by_id}


def brain(body: dict[str, Any]) -> dict[str, Any]:
    prompt = str(body["messages"][1]["content"])
    done = [str(m["content"]) for m in body["messages"] if m["role"] == "tool"]
    if "Research the topic" in prompt:
        if not done:
            return {"tool_calls": [tool_call("gather", {"topic": "tides"}, "call_gather")]}
        return {"content": f"Draft: {done[0]}"}
    if "Print this draft" in prompt:
        if not done:
            return {"tool_calls": [tool_call("print_page", {"text": "tides"}, "call_print")]}
        return {"content": f"Printed on {done[0]}"}
    side = "left" if "Side: left" in prompt else "right"
    if not done:
        return {"tool_calls": [tool_call("fetch", {"side": side}, f"call_{side}")]}
    return {"content": f"{side.upper()} result from {done[0]}"}
