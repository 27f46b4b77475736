"""Durable crewAI Flows: each method call a child workflow, state and router decisions recorded."""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from crewai.flow.flow import Flow, listen, or_, start
from crewai.flow.persistence.sqlite import SQLiteFlowPersistence
from dbos import DBOS, SetWorkflowID
from typer.testing import CliRunner

from crew_durable import (
    DBOSLLM,
    CrewClient,
    CrewDurableError,
    DatabaseNotReadyError,
    DBOSFlow,
    NotRecoverableError,
)
from crew_durable.cli import app
from tests.support import ledger
from tests.support.apps import desk, pipeline
from tests.support.cassettes import FAKE_PORT, fake_llm, played, replay
from tests.support.databases import Database
from tests.support.harness import workflow_tree
from tests.support.people import wait_for_request
from tests.support.processes import Harness
from tests.support.steps import step_names
from tools.fake_openai import serve

EXPECTED = {
    "result": {"page": "Printed on page 7", "counter": 3, "route": "approved"},
    "counter": 3,
    "route": "approved",
}
FANNED = {"left": "LEFT result from LEFT data", "right": "RIGHT result from RIGHT data", "counter": 4}


def _method_runs(workflow_id: str) -> list[tuple[str, Any]]:
    """Each method call of a flow run: its name and the result it recorded."""
    runs = DBOS.list_workflows(parent_workflow_id=workflow_id)
    return [
        (str((run.attributes or {}).get("crew_durable.name")), run.output["result"]["value"])
        for run in sorted(runs, key=_call_order)
        if run.name == "crew_durable.flow_method"
    ]


def _call_order(run: Any) -> int:
    """A child's place among its parent's operations (its id is ``<parent>-<operation>``)."""
    return int(str(run.workflow_id).rsplit("-", 1)[1])


def test_a_flow_kickoff_records_each_method_and_replays_with_no_request(
    launched: Database, side_effects: Path
) -> None:
    workflow_id = f"pipeline-{uuid.uuid4()}"
    with replay("pipeline.kickoff") as cassette, SetWorkflowID(workflow_id):
        first = pipeline.pipeline.kickoff(inputs={"topic": "tides"})
    assert played(cassette) == 4
    assert first == EXPECTED["result"]
    state = pipeline.pipeline.state
    assert state is not None and state["counter"] == 3 and state["page"] == "Printed on page 7"

    # One workflow per kickoff; each method call a child whose crews are its children.
    assert DBOS.get_workflow_status(workflow_id).name == "crew_durable.flow_kickoff"  # type: ignore[union-attr]
    assert _method_runs(workflow_id) == [
        ("pipeline.research", "Draft: notes on tides: ready"),
        ("pipeline.review", "approved"),  # the router's decision, recorded
        ("pipeline.publish", EXPECTED["result"]),
    ]
    tree = workflow_tree(workflow_id)
    research = tree[0][1]
    assert research[0][0] == "crew_durable.crew_kickoff"  # the scouts crew ran inside research

    with replay("pipeline.kickoff") as cassette, SetWorkflowID(workflow_id):
        again = pipeline.pipeline.kickoff(inputs={"topic": "tides"})
    assert played(cassette) == 0
    assert again == first
    assert ledger.count(side_effects, "gather") == ledger.count(side_effects, "print_page") == 1

    with CrewClient(launched.url) as client:  # any process lists it and reads its result
        [run] = [r for r in client.runs(name="pipeline") if r.run_id == workflow_id]
        assert (run.kind, run.status, run.llm_calls) == ("flow", "SUCCESS", 4)
        assert client.result(workflow_id) == first


@pytest.mark.parametrize("pause_at_request", [2, 3, 4])
def test_a_flow_killed_in_either_crew_resumes_there(
    system_database: Database, tmp_path: Path, pause_at_request: int
) -> None:
    """Killed in the scouts crew after its tool (2), or in the printers crew (3; 4, after its tool)."""
    harness = Harness(system_database, tmp_path)
    workflow_id = f"pipeline-{uuid.uuid4()}"
    harness.run_until_killed("pipeline", "kickoff", workflow_id, pause_at_request=pause_at_request)
    report = harness.run("recover", "pipeline", "kickoff", workflow_id)

    assert report["result"]["result"] == EXPECTED["result"]  # as uninterrupted
    assert report["result"]["state"]["counter"] == 3  # each method counted once: nothing ran twice
    assert report["result"]["state"]["route"] == "approved"
    assert ledger.count(harness.ledger, "gather") == 1  # the first crew's tool: not again
    assert ledger.count(harness.ledger, "print_page") == 1
    assert harness.requests() == 4 + 1  # the uninterrupted run's 4, and the one in flight at the kill
    names = [name for name, _ in _method_runs_in(system_database, workflow_id)]
    assert names == ["pipeline.research", "pipeline.review", "pipeline.publish"]


def test_listeners_crewai_runs_at_once_recover_without_a_mismatch(
    system_database: Database, tmp_path: Path
) -> None:
    """Two listeners of one event, each kicking off a crew: killed in the second, recovered.

    Without turns, the recovered branches could start in the other order and
    take each other's recorded crew outputs; here each gets its own.
    """
    harness = Harness(system_database, tmp_path)
    workflow_id = f"fanout-{uuid.uuid4()}"
    harness.run_until_killed("pipeline", "fan", workflow_id, pause_at_request=3)  # in the right crew
    report = harness.run("recover", "pipeline", "fan", workflow_id)
    assert report["result"]["result"] == FANNED
    assert ledger.count_where(harness.ledger, tool="fetch", side="left") == 1
    assert ledger.count_where(harness.ledger, tool="fetch", side="right") == 1
    assert harness.requests() == 4 + 1


def _method_runs_in(database: Database, workflow_id: str) -> list[tuple[str, Any]]:
    from dbos import DBOSClient

    client = DBOSClient(system_database_url=database.url)
    try:
        runs = client.list_workflows(parent_workflow_id=workflow_id)
        return [
            (str((run.attributes or {}).get("crew_durable.name")), run.output)
            for run in sorted(runs, key=_call_order)
            if run.name == "crew_durable.flow_method"
        ]
    finally:
        client.destroy()


# -- what a flow method may do ----------------------------------------------------------


def _answer(body: dict[str, Any]) -> dict[str, Any]:
    return {"content": f"summary of: {body['messages'][-1]['content']}"}


wrapped_llm = DBOSLLM.around(fake_llm(), "notes.summarize")


class NotesFlow(Flow[dict[str, Any]]):
    @start()
    def summarize(self) -> str:
        if self.state.get("plain"):
            return str(fake_llm().call("tides"))  # a plain LLM: refused
        return str(wrapped_llm.call("tides"))


notes = DBOSFlow(flow_name="notes", flow=NotesFlow)


def test_an_llm_called_in_a_method_is_a_step_and_a_plain_one_is_refused(
    launched: Database, fixed_ports: None
) -> None:
    workflow_id = f"notes-{uuid.uuid4()}"
    with serve(_answer, port=FAKE_PORT) as server:
        with SetWorkflowID(workflow_id):
            first = notes.kickoff()
        with SetWorkflowID(workflow_id):
            again = notes.kickoff()
        assert len(server.requests) == 1  # the second kickoff replayed the completion
        assert first == again == "summary of: tides"
        method = DBOS.list_workflows(parent_workflow_id=workflow_id)[0]
        assert step_names(method.workflow_id) == ["notes.summarize"]  # the completion, a step

        with pytest.raises(Exception, match=r"DBOSLLM\.around\(llm") as refused:
            notes.kickoff(inputs={"plain": True})
        assert "no step records" in str(refused.value)
        assert len(server.requests) == 1  # the plain call never reached the model


class LedgerFlow(Flow[dict[str, Any]]):
    @start()
    def stamp(self) -> str:
        self.state["when"] = object()  # no JSON form
        return "stamped"

    @listen(stamp)
    def never(self) -> str:
        return "never"


ledger_flow = DBOSFlow(flow_name="ledger_flow", flow=LedgerFlow)


def test_a_state_that_cannot_be_recorded_names_the_field(launched: Database) -> None:
    with pytest.raises(NotRecoverableError, match=r"state field 'when' of flow 'ledger_flow'"):
        ledger_flow.kickoff()


def test_a_flow_class_not_an_instance(launched: Database) -> None:
    with pytest.raises(TypeError, match=r"takes the Flow class, not an instance"):
        DBOSFlow(flow_name="instance", flow=NotesFlow())  # type: ignore[arg-type]


def test_start_and_akickoff_give_what_kickoff_gives(launched: Database, side_effects: Path) -> None:
    with replay("pipeline.kickoff") as cassette, SetWorkflowID(f"pipeline-start-{uuid.uuid4()}"):
        started = pipeline.pipeline.start(inputs={"topic": "tides"}).get_result(polling_interval_sec=0.05)
    assert played(cassette) == 4
    workflow_id = f"pipeline-async-{uuid.uuid4()}"

    async def kickoff() -> Any:
        with SetWorkflowID(workflow_id):
            return await pipeline.pipeline.akickoff(inputs={"topic": "tides"})

    with replay("pipeline.kickoff") as cassette:
        first = asyncio.run(kickoff())
    assert played(cassette) == 4
    with replay("pipeline.kickoff") as cassette:
        again = asyncio.run(kickoff())
    assert played(cassette) == 0  # the same id: the recorded result, nothing asked
    assert started == first == again == EXPECTED["result"]


# -- people ------------------------------------------------------------------------------


def _asking(database: Database, run_id: str, method: str) -> Callable[[], bool]:
    """Whether the run has an open request from flow method ``method``."""

    def check() -> bool:
        try:
            with CrewClient(database.url) as client:
                return any(r.task == method for r in client.pending_input(run_id))
        except DatabaseNotReadyError:
            return False

    return check


def test_human_feedback_and_ask_wait_durably_across_kills(system_database: Database, tmp_path: Path) -> None:
    harness = Harness(system_database, tmp_path)
    run_id = f"desk-{uuid.uuid4()}"

    # 1. Killed while the @human_feedback review waits; answered while no process runs.
    assert harness.run_and_kill_when("desk", "kickoff", run_id, _asking(system_database, run_id, "draft"))
    with CrewClient(system_database.url) as client:
        [review] = client.pending_input(run_id)
        assert (review.kind, review.agent, review.run_id) == ("feedback", "desk", run_id)
        assert review.message == f"Approve this draft?\n\n{desk.DRAFT}"
        client.send_feedback(review.request_id, "Shorter, please.")

    # 2. Recovered: the next method asks with Flow.ask(); killed while that waits.
    assert harness.run_and_kill_when(
        "desk", "kickoff", run_id, _asking(system_database, run_id, "sign"), mode="recover"
    )
    with CrewClient(system_database.url) as client:
        [question] = client.pending_input(run_id)
        assert question.message == "Who signs the piece?"
        client.send_feedback(question.request_id, "Ada")

    # 3. Recovered again: it finishes with both answers, each method body run once.
    report = harness.run("recover", "desk", "kickoff", run_id)
    assert report["result"]["result"] == {
        "output": desk.DRAFT,
        "feedback": "Shorter, please.",
        "signer": "Ada",
        "counter": 2,
    }
    assert ledger.count(harness.ledger, "draft") == 1  # finished before the first kill: not again
    assert ledger.count_where(harness.ledger, tool="sign", signer="Ada") == 1
    with CrewClient(system_database.url) as client:
        events = list(client.stream(run_id))
        assert client.pending_input(run_id) == []
        assert client.result(run_id) == report["result"]["result"]  # no flow code needed to read it
    asked = [e.data["request_id"] for e in events if e.kind == "input_requested"]
    assert len(asked) == len(set(asked)) == 2  # each question asked once, across three processes
    assert [e.text for e in events if e.kind == "input_answered"] == ["Shorter, please.", "Ada"]
    assert [e.task for e in events if e.kind == "method_finished"] == ["draft", "sign"]


def _collapse(body: dict[str, Any]) -> dict[str, Any]:
    prompt = str(body["messages"][-1]["content"])
    return {"content": '{"outcome": "%s"}' % ("approved" if "Ship it" in prompt else "rejected")}


def test_the_outcome_feedback_collapses_to_is_recorded_and_routes_the_replay(
    launched: Database, fixed_ports: None, side_effects: Path
) -> None:
    run_id = f"gate-{uuid.uuid4()}"
    with serve(_collapse, port=FAKE_PORT) as server, CrewClient(launched.url) as client:
        with SetWorkflowID(run_id):
            handle = desk.gate.start()
        review = wait_for_request(client, run_id)
        assert review.message == f"Publish it?\n\n{desk.DRAFT}"
        client.send_feedback(review.request_id, "Ship it today.")
        result = handle.get_result(polling_interval_sec=0.05)
        assert len(server.requests) == 1  # the LLM that collapsed the feedback
        with SetWorkflowID(run_id):
            assert desk.gate.kickoff() == result  # replayed: the recorded outcome routes it again
        assert len(server.requests) == 1
    assert result == {"published": desk.DRAFT, "feedback": "Ship it today.", "outcome": "approved"}
    assert "gate.feedback_outcome" in step_names(run_id)  # the outcome is a step of the kickoff
    assert ledger.count(side_effects, "propose") == 1


class HelperFlow(Flow[dict[str, Any]]):
    @start()
    def consult(self) -> str:
        from crewai import Agent

        helper = Agent(role="Helper", goal="Help", backstory="Kind.", llm=fake_llm())
        return str(helper.kickoff("Say hello").raw)  # a plain agent: its completions are no steps


helper_flow = DBOSFlow(flow_name="helper_flow", flow=HelperFlow)


def test_a_plain_agent_kicked_off_in_a_method_is_refused_with_how_to_wrap_it(
    launched: Database, fixed_ports: None
) -> None:
    with serve(_answer, port=FAKE_PORT) as server:
        with pytest.raises(Exception, match=r"plain crewAI Agent 'Helper'.*DBOSAgent\(agent_name="):
            helper_flow.kickoff()
        assert len(server.requests) == 0


@pytest.mark.parametrize("scenario", ["archived", "archived_by_id"])
def test_crewai_persist_and_dbos_recovery_resume_a_flow_once(
    system_database: Database, tmp_path: Path, scenario: str
) -> None:
    """A flow with crewAI's @persist, killed in its second method: DBOS resumes it, once.

    crewAI saved the state after the first method; kicked off again by
    recovery (with the state's id, crewAI's own way to resume, or without),
    the flow counts each method once and crewAI's saved state ends as the
    run's state.
    """
    harness = Harness(system_database, tmp_path)
    workflow_id = f"archive-{uuid.uuid4()}"
    harness.run_until_killed("pipeline", scenario, workflow_id, pause_at_request=2)  # after gather ran
    report = harness.run("recover", "pipeline", scenario, workflow_id)
    assert report["result"]["result"] == {"draft": "Draft: notes on tides: ready", "counter": 3}
    assert ledger.count(harness.ledger, "gather") == 1
    assert harness.requests() == 2 + 1
    state = report["result"]["state"]
    if scenario == "archived_by_id":
        assert state["id"] == "archive-77"
    saved = SQLiteFlowPersistence(str(tmp_path / "flows.db")).load_state(state["id"])
    assert saved == state  # crewAI's record and DBOS's agree


class RaceFlow(Flow[dict[str, Any]]):
    """Two start methods (one async) that crewAI runs at once, and an ``or_`` listener of both."""

    @start()
    async def fast(self) -> str:
        await asyncio.sleep(0.01)
        ledger.record("fast")
        return "fast"

    @start()
    def slow(self) -> str:
        ledger.record("slow")
        return "slow"

    @listen(or_(fast, slow))
    def first(self, winner: str) -> str:
        self.state["winner"] = winner
        ledger.record("first", winner=winner)
        return f"first: {winner}"


race = DBOSFlow(flow_name="race", flow=RaceFlow)


def test_async_methods_and_or_listeners_take_turns_and_replay_the_same(
    launched: Database, side_effects: Path
) -> None:
    workflow_id = f"race-{uuid.uuid4()}"
    with SetWorkflowID(workflow_id):
        first = race.kickoff()
    with SetWorkflowID(workflow_id):
        again = race.kickoff()
    assert first == again
    assert race.state is not None and race.state["winner"] == "fast"  # in definition order, every time
    assert [name for name, _ in _method_runs(workflow_id)] == ["race.fast", "race.slow", "race.first"]
    assert [e["tool"] for e in ledger.entries(side_effects)] == ["fast", "slow", "first"]  # each once


def test_a_process_without_the_flow_code_enqueues_a_flow_run(launched: Database, side_effects: Path) -> None:
    DBOS.register_queue("flows")  # this process is also the worker of the queue
    run_id, by_cli = f"pipeline-queued-{uuid.uuid4()}", f"pipeline-cli-{uuid.uuid4()}"
    with replay("pipeline.kickoff"), CrewClient(launched.url) as client:
        handle = client.enqueue_flow("pipeline", {"topic": "tides"}, queue_name="flows", run_id=run_id)
        assert handle.get_workflow_id() == run_id
        assert client.result(run_id) == EXPECTED["result"]
        [run] = [r for r in client.runs(name="pipeline") if r.run_id == run_id]
        assert run.kind == "flow"
    with replay("pipeline.kickoff"), CrewClient(launched.url) as client:
        command = ["enqueue", "pipeline", "--flow", "--queue", "flows", "--run-id", by_cli]
        printed = CliRunner().invoke(app, [*command, "--inputs", '{"topic": "tides"}', "--db", launched.url])
        assert printed.exit_code == 0, printed.output
        assert printed.output.strip() == by_cli
        assert client.result(by_cli) == EXPECTED["result"]


@DBOS.workflow(name="tests.flows.nightly")
def nightly() -> dict[str, Any]:
    """A user's own workflow that runs a durable flow among its steps."""
    return {"fan": fanout_result()}


def fanout_result() -> Any:
    return pipeline.fanout.kickoff()


def test_a_durable_flow_inside_a_users_workflow_is_its_child_and_replays(
    launched: Database, side_effects: Path
) -> None:
    workflow_id = f"nightly-{uuid.uuid4()}"
    with replay("pipeline.fan") as cassette, SetWorkflowID(workflow_id):
        first = nightly()
    assert played(cassette) == 4
    with replay("pipeline.fan") as cassette, SetWorkflowID(workflow_id):
        again = nightly()
    assert played(cassette) == 0
    assert first == again == {"fan": FANNED}
    [child] = DBOS.list_workflows(parent_workflow_id=workflow_id)
    assert child.name == "crew_durable.flow_kickoff"


class StreamingFlow(Flow[dict[str, Any]]):
    stream: bool = True

    @start()
    def go(self) -> str:
        return "go"


def test_a_streaming_flow_is_refused_when_it_is_wrapped(launched: Database) -> None:
    with pytest.raises(CrewDurableError, match=r"stream=True.*CrewClient\.stream\(run_id\)"):
        DBOSFlow(flow_name="streaming", flow=StreamingFlow)


class Route(enum.Enum):
    PUBLISH = "publish"


def test_a_routers_enum_decision_comes_back_as_itself_or_as_the_value_it_routes_on() -> None:
    from crew_durable._flow_codec import decode, encode

    assert decode(encode(Route.PUBLISH, "a router")) is Route.PUBLISH

    class Local(enum.Enum):  # not importable by path: the value, on which crewAI routes
        HOLD = "hold"

    assert decode(encode(Local.HOLD, "a router")) == "hold"
