"""A run's event stream, followed from another process across a kill of the run and of the reader."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from crewai import Agent, Task
from crewai.crews.crew_output import CrewOutput
from crewai.events.event_bus import crewai_event_bus
from crewai.tools import tool
from crewai.types.streaming import CrewStreamingOutput
from dbos import DBOS, SetWorkflowID

from crew_durable import (
    CrewClient,
    DatabaseNotReadyError,
    DBOSAgent,
    StreamEvent,
    UnknownRunError,
    kept_tokens,
)
from crew_durable import _dbos_internals as internals
from tests.support import harness, ledger
from tests.support.apps import checkout, ticker
from tests.support.cassettes import FAKE_PORT, fake_llm, played, replay
from tests.support.databases import Database
from tests.support.people import answering
from tests.support.processes import Harness
from tools.fake_openai import serve, tool_call


class Reader:
    """A process following a run's stream from an offset; stopping it keeps what it read so far."""

    def __init__(self, url: str, run_id: str, offset: int = 0) -> None:
        self.url, self.run_id, self.offset = url, run_id, offset
        self.events: list[StreamEvent] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        client = None
        while client is None:
            try:
                client = CrewClient(self.url, polling_interval_seconds=0.02)
            except DatabaseNotReadyError:
                if self._stopped.wait(0.05):
                    return
        with client:
            while not self._stopped.is_set():
                try:
                    offset = self.events[-1].offset + 1 if self.events else self.offset
                    for event in client.stream(self.run_id, offset):
                        if self._stopped.is_set():
                            return
                        self.events.append(event)
                    return  # the run ended
                except UnknownRunError:  # not started yet
                    self._stopped.wait(0.05)

    def stop(self) -> list[StreamEvent]:
        """Stop reading (the reader's process is gone); what it had read."""
        self._stopped.set()
        return list(self.events)

    def next_offset(self) -> int:
        return self.events[-1].offset + 1 if self.events else self.offset

    def wait_until_done(self, timeout: float = 120) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the stream did not end with the run"

    def saw_tokens_of_the_note(self) -> bool:
        return any(e.kind == "token" and e.agent == "checkout.writer" for e in self.events)


def test_a_stream_read_across_kills_gives_each_finished_event_once(
    system_database: Database, tmp_path: Path, fixed_ports: None
) -> None:
    run_id = f"checkout-{uuid.uuid4()}"
    harness_ = Harness(system_database, tmp_path, env={harness.LIVE: "1"})
    with (
        serve(checkout.brain, port=FAKE_PORT, token_delay=0.1) as server,
        answering(system_database.url, checkout.answer, run_id),
    ):
        first = Reader(system_database.url, run_id)
        # Killed while the writer's first note streams; the reader is restarted meanwhile.
        assert harness_.run_and_kill_when("checkout", "ada", run_id, first.saw_tokens_of_the_note)
        before = first.stop()
        second = Reader(system_database.url, run_id, offset=before[-1].offset + 1)
        report = harness_.run("recover", "checkout", "ada", run_id)
        second.wait_until_done()
        requests = len(server.requests)

    events = before + second.events
    assert [e.offset for e in events] == list(range(len(events)))  # nothing skipped, nothing twice
    assert events[0].kind == "run_started" and events[-1].kind == "run_finished"
    finished = [e for e in events if e.kind != "token"]
    kinds = Counter(e.kind for e in finished)
    assert kinds == {
        "run_started": 1,
        "task_started": 2,
        "llm_finished": 4,
        "tool_started": 1,
        "input_requested": 3,
        "input_answered": 3,
        "tool_finished": 1,
        "task_finished": 2,
        "run_finished": 1,
    }
    assert len({e.data["completion"] for e in finished if e.kind == "llm_finished"}) == 4

    texts = kept_tokens(events)
    for event in finished:
        if event.kind == "llm_finished" and event.text:
            assert texts[event.data["completion"]] == event.text  # the kept tokens make the completion
    attempts = {(e.data["completion"], e.data["attempt"]) for e in events if e.kind == "token"}
    cut_short = {pair for pair in attempts if texts.get(pair[0]) is not None} - {
        (e.data["completion"], e.data["attempt"]) for e in finished if e.kind == "llm_finished"
    }
    assert len(cut_short) == 1  # the note the kill interrupted streamed again under a new attempt
    note = [e for e in finished if e.kind == "task_finished"][-1]
    assert report["result"]["raw"] == checkout_note(note)
    assert requests == 5  # 4 completions, and the one the kill cut short
    assert ledger.count(harness_.ledger, "charge") == 1


def checkout_note(event: StreamEvent) -> str:
    assert event.text is not None
    return event.text.split("Final Answer: ", 1)[-1]


def test_a_streaming_crew_returns_crewais_streaming_output_from_its_durable_stream(
    launched: Database,
) -> None:
    workflow_id = f"ticker-{uuid.uuid4()}"
    with replay("ticker.kickoff") as cassette, SetWorkflowID(workflow_id):
        streaming = ticker.ticker.kickoff(inputs={"event": "launch"})
        assert isinstance(streaming, CrewStreamingOutput)
        chunks = list(streaming)
    answer = "Thought: say it\nFinal Answer: The launch is on, and it is durable."
    assert "".join(c.content for c in chunks) == answer  # tokens, written in batches of up to 0.1 s
    assert {(c.agent_role, c.task_name) for c in chunks} == {("ticker.announcer", "Announce the launch.")}
    assert isinstance(streaming.result, CrewOutput)
    assert streaming.result.raw == "The launch is on, and it is durable."
    assert played(cassette) == 1

    with replay("ticker.kickoff") as cassette, SetWorkflowID(workflow_id):  # the same run again
        again = ticker.ticker.kickoff(inputs={"event": "launch"})
        assert [c.content for c in again] == [c.content for c in chunks]
    assert again.result.raw == streaming.result.raw
    assert played(cassette) == 0


def test_tokens_stream_after_a_crewai_scoped_handlers_block_dropped_the_listener(launched: Database) -> None:
    """crewAI's ``scoped_handlers()`` hides every handler inside it and drops those registered there."""

    def streamed() -> str:
        with replay("ticker.kickoff"), SetWorkflowID(f"ticker-{uuid.uuid4()}"):
            return "".join(c.content for c in ticker.ticker.kickoff(inputs={"event": "launch"}))

    answer = "Thought: say it\nFinal Answer: The launch is on, and it is durable."
    with crewai_event_bus.scoped_handlers():
        assert streamed() == answer  # the listener registered inside the block
    assert streamed() == answer  # and again after the block took it away


LOOKUPS = 12


@tool
def look_up(key: int) -> str:
    """Look a key up."""
    return f"value of {key}"


looker = DBOSAgent(
    agent_name="streams.looker",
    orig_agent=Agent(
        role="Looker", goal="Look keys up", backstory="Patient.", tools=[look_up], llm=fake_llm()
    ),
)


def _looking(body: dict[str, Any]) -> dict[str, Any]:
    done = sum(1 for m in body["messages"] if m["role"] == "tool")
    if done < LOOKUPS:
        return {"tool_calls": [tool_call("look_up", {"key": done}, f"call_{done}")]}
    return {"content": f"looked up {done} keys"}


def test_a_replay_reads_its_recorded_events_at_once_not_one_by_one(
    launched: Database, fixed_ports: None
) -> None:
    """A fork from the last completion replays 12 completions and their 36 events, each written once."""
    run_id = f"looker-{uuid.uuid4()}"
    task = Task(description="Look up keys until told.", expected_output="a count", agent=looker)
    with serve(_looking, port=FAKE_PORT) as server, SetWorkflowID(run_id):
        assert looker.execute_task(task) == f"looked up {LOOKUPS} keys"
        completions = [
            s["function_id"] for s in DBOS.list_workflow_steps(run_id) if s["function_name"].endswith(".llm")
        ]
        assert len(completions) == LOOKUPS + 1

        engine = internals._system_database().engine
        reads: list[str] = []

        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT") and "operation_outputs" in statement:
                reads.append(statement)

        requests = len(server.requests)
        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            fork = DBOS.fork_workflow(run_id, completions[-1])
            assert fork.get_result()["output"]["value"] == f"looked up {LOOKUPS} keys"  # the run record
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        assert len(server.requests) == requests + 1  # only the forked completion

    # DBOS reads each of the 12 replayed completions, and the new one and its 2 events after the
    # fork point; the 36 events replayed with them cost 2 reads in all (one by one, 36).
    assert len(reads) <= LOOKUPS + 3 + 3, "\n".join(" ".join(r.split())[:120] for r in reads)
    with CrewClient(launched.url) as client:
        events = [e for e in client.stream(fork.workflow_id) if e.kind != "token"]
    kinds = Counter(e.kind for e in events)
    assert kinds["llm_finished"] == LOOKUPS + 1 and kinds["tool_started"] == kinds["tool_finished"] == LOOKUPS
    assert [e.offset for e in events] == sorted({e.offset for e in events})  # each once, in order
