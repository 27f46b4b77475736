"""The application side of a run's event stream: who writes which event, and how often.

Every durable workflow crew_durable runs (a crew kickoff, a task's agent
run) knows the root run it belongs to; its events go to the root run's one
DBOS stream (key ``crew_durable.events``), so a reader follows a whole crew
with one offset. Two kinds of writes:

- **recorded events** (task and tool start/finish, finished completions,
  input requests and answers, the run's end) are written by workflow code
  as an operation of the writing workflow: a recovered run replays them
  instead of writing them again, so each appears exactly once, in order;
- **tokens** are written live from inside the completion step that streams
  them, a few per second at most (they are batched). They are at least
  once: a completion cut short by a crash streams again under a new
  ``attempt``, and its ``llm_finished`` event names the attempt that counts.

Outside a durable run, nothing is written.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from crewai.events.base_events import BaseEvent
from crewai.events.event_bus import crewai_event_bus
from crewai.events.types.llm_events import LLMStreamChunkEvent
from crewai.llms.base_llm import BaseLLM
from dbos import DBOS

from crew_durable._crewai_internals import event_handler_tables
from crew_durable._dbos_internals import (
    next_step_id,
    recorded_stream_events,
    reserve_operation,
    workflow_attributes,
    write_live_to_run_stream,
    write_to_run_stream,
)
from crew_durable._protocol import ATTR_RUN, STREAM_KEY, EventKind, StreamEvent, event_record

TOKEN_FLUSH_SECONDS = 0.1
"""Tokens of a streaming completion are written at most this often (and when it ends)."""

MAX_EVENT_TEXT = 4000
"""Longer texts (tool results, answers) are cut to this many characters in events."""


@dataclass(frozen=True)
class RunStream:
    """Where the events of the workflow running in this context go."""

    run_id: str
    """The root run whose stream receives the events."""
    run_step_id: int
    """The root run's step under which this workflow runs (its own id's steps for the root)."""
    workflow_id: str
    agent: str | None = None
    task: str | None = None

    def for_child(self) -> dict[str, Any]:
        """What a child workflow started from here needs to write to the same stream, as JSON."""
        step = next_step_id() if self.run_id == self.workflow_id else self.run_step_id
        return {"run": self.run_id, "run_step": step if step is not None else self.run_step_id}


_current: ContextVar[RunStream | None] = ContextVar("crew_durable_run_stream", default=None)


def current() -> RunStream | None:
    """The stream of the durable run executing in this context, if any."""
    return _current.get()


@contextmanager
def writing_to(stream: RunStream) -> Iterator[RunStream]:
    """Send the events of the workflow code in this block to ``stream``; write deferred ones at its end."""
    token = _current.set(stream)
    try:
        yield stream
        flush()
    except BaseException:
        with suppress(Exception):  # a failed or cancelled run: its replay, if any, writes them
            flush()
        _pending.pop(stream.workflow_id, None)
        raise
    finally:
        _current.reset(token)
        with _writing_guard:
            _writing.pop(stream.workflow_id, None)
            _recorded.pop(stream.workflow_id, None)


def stream_for(spec_stream: dict[str, Any] | None, agent: str | None, task: str | None) -> RunStream:
    """The stream of a workflow started with ``spec_stream`` (from :meth:`RunStream.for_child`).

    A child's id is derived from its run's; one that is not was forked on
    its own (``fork --step``), and its attributes name the run it now
    belongs to.
    """
    workflow_id = DBOS.workflow_id
    assert workflow_id is not None
    if spec_stream is None:  # a root: its own stream
        return RunStream(workflow_id, 0, workflow_id, agent, task)
    run_id = str(spec_stream["run"])
    if not workflow_id.startswith(f"{run_id}-"):
        run_id = str(workflow_attributes(workflow_id).get(ATTR_RUN, run_id))
    return RunStream(run_id, int(spec_stream["run_step"]), workflow_id, agent, task)


class Slot:
    """The step id of an event to be written later, taken now (see :func:`reserve`)."""

    def __init__(self, reserved: Any) -> None:
        self.reserved = reserved


def reserve() -> Slot | None:
    """Take the step id of an event now, from async workflow code, before an ``await``."""
    if _current.get() is None or DBOS.workflow_id is None or DBOS.step_id is not None:
        return None
    return Slot(reserve_operation())


DEFERRED = frozenset({"llm_finished", "tool_finished"})
"""Events written with the workflow's next event, or before its next completion, in one transaction.

Each takes its place among the workflow's operations when it happens, so a
replay numbers everything the same; only its write waits, for what nearly
always follows at once (a tool's start after a completion, a task's end
after its last completion, the next completion after a tool). A crash
before the write loses nothing: the replay comes back to the event and
writes it then.
"""

_pending: dict[str, list[tuple[dict[str, Any], Any]]] = {}
"""Deferred events by workflow id, each with the operation it took."""
_writing: dict[str, threading.Lock] = {}
_recorded: dict[str, frozenset[int]] = {}
"""By workflow id, the operations a replayed workflow had recorded as events: skipped unread."""
_writing_guard = threading.Lock()


def emit(
    kind: EventKind,
    *,
    text: str | None = None,
    data: dict[str, Any] | None = None,
    agent: str | None = None,
    task: str | None = None,
    slot: Slot | None = None,
) -> None:
    """Write a recorded event of the current run (exactly once), from workflow code."""
    stream = _current.get()
    if stream is None or DBOS.workflow_id is None or (DBOS.step_id is not None and slot is None):
        return
    record = event_record(
        kind,
        workflow_id=stream.workflow_id,
        at=time.time(),
        agent=agent if agent is not None else stream.agent,
        task=task if task is not None else stream.task,
        text=_cut(text),
        data=data,
    )
    reserved = slot.reserved if slot is not None else None
    if kind in DEFERRED:
        taken = reserved if reserved is not None else reserve_operation()
        with _lock_of(stream.workflow_id):
            _pending.setdefault(stream.workflow_id, []).append((record, taken))
        return
    _write(stream, [(record, reserved)])


def flush() -> None:
    """Write the current workflow's deferred events now (before a completion, at the end of its code)."""
    stream = _current.get()
    if stream is not None and DBOS.workflow_id is not None and DBOS.step_id is None:
        _write(stream, [])


def _write(stream: RunStream, events: list[tuple[dict[str, Any], Any]]) -> None:
    with _lock_of(stream.workflow_id):  # in order, whichever thread of the workflow writes
        waiting = _pending.pop(stream.workflow_id, [])
        if not (waiting or events):
            return
        known = _recorded.get(stream.workflow_id)
        replayed = write_to_run_stream(
            stream.run_id, stream.run_step_id, STREAM_KEY, [*waiting, *events], known or ()
        )
        if replayed and known is None:  # a replay: read the rest of its recorded events at once
            _recorded[stream.workflow_id] = recorded_stream_events(stream.workflow_id)


def _lock_of(workflow_id: str) -> threading.Lock:
    with _writing_guard:
        lock = _writing.get(workflow_id)
        if lock is None:
            lock = _writing[workflow_id] = threading.Lock()
        return lock


@contextmanager
def reporting_failure(is_root: bool) -> Iterator[None]:
    """End a root run's stream with a ``run_finished`` event that says why the run failed."""
    try:
        yield
    except Exception as error:
        if is_root:
            failure = {"status": "ERROR", "error": type(error).__name__}
            with suppress(Exception):  # a cancelled run cannot record anything more; the error stands
                emit("run_finished", text=str(error), data=failure)
        raise


def next_completion_id() -> str | None:
    """The id the completion about to start gets in events (its step), inside a durable run."""
    step = next_step_id()
    if _current.get() is None or step is None or DBOS.workflow_id is None:
        return None
    return f"{DBOS.workflow_id}#{step}"


def _cut(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_EVENT_TEXT:
        return text
    return text[:MAX_EVENT_TEXT] + f"... [{len(text) - MAX_EVENT_TEXT} more characters]"


# -- tokens ---------------------------------------------------------------------


class TokenWriter:
    """Collects one completion attempt's streamed chunks and writes them in batches."""

    def __init__(self, stream: RunStream, completion: str) -> None:
        self.stream = stream
        self.completion = completion
        self.attempt = uuid.uuid4().hex
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._last_write = time.monotonic()
        self.written = 0

    def add(self, chunk: str) -> None:
        with self._lock:
            self._pending.append(chunk)
            due = time.monotonic() - self._last_write >= TOKEN_FLUSH_SECONDS
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            text = "".join(self._pending)
            self._pending.clear()
            self._last_write = time.monotonic()
        if not text:
            return
        record = event_record(
            "token",
            workflow_id=self.stream.workflow_id,
            at=time.time(),
            agent=self.stream.agent,
            task=self.stream.task,
            text=text,
            data={"completion": self.completion, "attempt": self.attempt},
        )
        write_live_to_run_stream(self.stream.run_id, self.stream.run_step_id, STREAM_KEY, record)
        self.written += 1


_token_writer: ContextVar[TokenWriter | None] = ContextVar("crew_durable_token_writer", default=None)
_handler_lock = threading.Lock()


def _on_chunk(_: Any, event: BaseEvent) -> None:
    writer = _token_writer.get()
    if writer is not None and isinstance(event, LLMStreamChunkEvent) and event.chunk:
        writer.add(event.chunk)


def _listen_for_chunks() -> None:
    """Register the chunk listener if crewAI's event bus does not have it (first use, or scopes).

    crewAI calls stream-chunk handlers synchronously in the thread that
    streams, so the listener sees the completion step's context and writes
    only for the step in progress; for anything else it does nothing. It is
    looked for on every streaming completion, not remembered: a
    ``crewai_event_bus.scoped_handlers()`` block takes every handler away
    while it runs and drops those registered inside it when it ends.
    """
    if _on_chunk in event_handler_tables()[0].get(LLMStreamChunkEvent, ()):
        return
    with _handler_lock:
        if _on_chunk not in event_handler_tables()[0].get(LLMStreamChunkEvent, ()):
            crewai_event_bus.register_handler(LLMStreamChunkEvent, _on_chunk)


@contextmanager
def streaming_tokens(stream: RunStream | None) -> Iterator[TokenWriter | None]:
    """Inside a completion step: write the tokens it streams, tagged with this attempt."""
    step_id, workflow_id = DBOS.step_id, DBOS.workflow_id
    if stream is None or step_id is None or workflow_id is None:
        yield None
        return
    _listen_for_chunks()
    writer = TokenWriter(stream, f"{workflow_id}#{step_id}")
    token = _token_writer.set(writer)
    try:
        yield writer
    finally:
        _token_writer.reset(token)
        writer.flush()


def read_run_stream(run_id: str) -> Iterator[StreamEvent]:
    """The events of a run of this process's application, from its start, live."""
    values = DBOS.read_stream(run_id, STREAM_KEY, polling_interval_sec=READ_POLL_SECONDS)
    for offset, value in enumerate(values):
        yield StreamEvent.from_record(offset, value)


READ_POLL_SECONDS = 0.05
"""How often an in-process reader of a run's stream checks for new events without LISTEN/NOTIFY."""


def stream_llms(agents: Iterable[Any]) -> None:
    """Make the agents' LLMs stream, as crewAI does for a ``Crew(stream=True)``.

    Set on the durable wrapper and on the LLM it wraps, so the copies a run
    makes of an agent stream too.
    """
    for agent in agents:
        llm = getattr(agent, "llm", None)
        if isinstance(llm, BaseLLM):
            llm.stream = True
            wrapped = getattr(llm, "wrapped", None)
            if isinstance(wrapped, BaseLLM):
                wrapped.stream = True
