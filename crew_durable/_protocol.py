"""What the two halves of crew_durable agree on: the records a run leaves in the system database.

An application process (it defines agents and crews) and any other process
(a web backend, the CLI: only the database URL) meet in DBOS's own tables.
This module is the one place that says what goes there, so both sides read
and write the same shapes:

- **workflow attributes** (DBOS ``SetWorkflowAttributes``) mark every
  crew_durable workflow with its kind, its name, the run it belongs to and,
  for a crew, its number of tasks; a run waiting for a person carries the
  open ``InputRequest`` there too, so one query lists every open request;
- **the run's event stream** (a DBOS stream of the root run, key
  :data:`STREAM_KEY`) holds its :class:`StreamEvent`\\ s;
- **answers** are DBOS messages to the waiting workflow, on the request's
  id as topic and with the request's id as idempotency key: DBOS stores at
  most one message per key, so at most one decision per request can ever
  exist, whoever sends it (a person, or the run itself when its wait times out).

Every record carries :data:`FORMAT`, the version of these shapes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from crew_durable._errors import RecordFormatError

FORMAT = 2
"""The version of what durable runs record, and of the steps they take to record it.

2: phase 2 (run attributes, event streams, durable questions). A change to
the sequence of operations a run records bumps it: a run recorded under
one format replays only under code of the same format (see ``_config``).
"""

STREAM_KEY = "crew_durable.events"
"""The DBOS stream key of a run's events, written to the root run's stream."""

# -- workflow attributes -------------------------------------------------------

ATTR_FORMAT = "crew_durable"
"""Present (the format version) on every workflow crew_durable starts."""
ATTR_KIND = "crew_durable.kind"
"""``"crew"``, ``"agent"`` (a task run or an agent kickoff), ``"flow"`` or ``"flow_method"``."""
ATTR_NAME = "crew_durable.name"
"""The crew's, agent's or flow's registered name."""
ATTR_RUN = "crew_durable.run"
"""The id of the root run this workflow belongs to (its own id for a root)."""
ATTR_TASKS = "crew_durable.tasks"
"""A crew kickoff's number of tasks, so listings need no crew code."""
ATTR_TASK = "crew_durable.task"
"""An agent run's task: ``{"index": n, "name": ..., "description": ...}``."""
FORKED_FROM = "crew_durable.forked_from"
"""On a fork: ``{"run": ..., "task": n, "step": m}``, where it was forked from."""
ATTR_WAITING = "crew_durable.waiting"
"""``True`` while the workflow waits for a person's answer."""
ATTR_REQUEST = "crew_durable.request"
"""The open request (an :class:`InputRequest` as JSON) while waiting, else ``None``."""

RunKind = Literal["crew", "agent", "flow", "flow_method"]

KICKOFF_WORKFLOW = "crew_durable.crew_kickoff"
"""The workflow of a crew kickoff, by the name a process without the crew code enqueues it."""
TASK_RUN_WORKFLOWS = ("crew_durable.agent_run", "crew_durable.agent_run_async")
"""The workflows of agent runs (a crew's tasks), as DBOS records their names."""
FLOW_KICKOFF_WORKFLOW = "crew_durable.flow_kickoff"
"""The workflow of a flow kickoff (``DBOSFlow``); it waits for ``@human_feedback`` answers."""
FLOW_METHOD_WORKFLOW = "crew_durable.flow_method"
"""The workflow of one call of a flow method, a child of the kickoff; it waits for ``Flow.ask()``."""
WAITING_WORKFLOWS = (*TASK_RUN_WORKFLOWS, FLOW_KICKOFF_WORKFLOW, FLOW_METHOD_WORKFLOW)
"""The workflows that can wait for a person."""


def run_attributes(kind: RunKind, name: str, run_id: str, **extra: Any) -> dict[str, Any]:
    """The attributes crew_durable attaches to a workflow it starts."""
    return {ATTR_FORMAT: FORMAT, ATTR_KIND: kind, ATTR_NAME: name, ATTR_RUN: run_id, **extra}


# -- input requests and answers -----------------------------------------------

InputKind = Literal["feedback", "approval"]


@dataclass(frozen=True)
class InputRequest:
    """A question a durable run waits on: feedback on an answer, or approval of a tool call.

    ``run_id`` is the root run (the crew kickoff), ``workflow_id`` the run
    that waits (a task's agent run). ``message`` is what the person reviews:
    the agent's answer, or a description of the tool call. Approvals carry
    the ``tool`` and its exact ``arguments``. ``asked_at`` is a Unix time.
    ``timeout_seconds`` is how long the run waits before it goes on without
    an answer (``None``: as long as it takes).
    """

    request_id: str
    run_id: str
    workflow_id: str
    kind: InputKind
    agent: str
    task: str | None
    message: str
    asked_at: float
    tool: str | None = None
    arguments: dict[str, Any] | None = None
    timeout_seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InputRequest:
        check_format(data, "input request")
        fields = {key: value for key, value in data.items() if key != "format"}
        return cls(**fields)


def request_id_for(workflow_id: str, step_id: int) -> str:
    """A request's id: the waiting workflow and the id of the step that asked.

    Deterministic, so a recovered run asks under the same id; and the client
    finds the waiting workflow from the id alone.
    """
    return f"{workflow_id}#{step_id}"


def workflow_of_request(request_id: str) -> str | None:
    """The waiting workflow named by a request id, or ``None`` if it is not one."""
    workflow_id, sep, step = request_id.rpartition("#")
    return workflow_id if sep and workflow_id and step.isdigit() else None


AnswerKind = Literal["feedback", "approval", "timeout"]


def answer(kind: AnswerKind, answer_id: str, **content: Any) -> dict[str, Any]:
    """The message that decides a request: ``text`` (feedback), ``approved``/``reason`` (approval)."""
    return {"format": FORMAT, "kind": kind, "answer_id": answer_id, **content}


# -- stream events --------------------------------------------------------------

EventKind = Literal[
    "run_started",
    "task_started",
    "token",
    "llm_finished",
    "tool_started",
    "tool_finished",
    "input_requested",
    "input_answered",
    "task_finished",
    "method_started",
    "method_finished",
    "run_finished",
]


@dataclass(frozen=True)
class StreamEvent:
    """One event of a run's stream, as ``CrewClient.stream`` yields it.

    ``offset`` is the event's stable position in the run's stream: a reader
    that resumes from an offset gets that event and every later one.
    ``workflow_id`` is the (task) run that wrote it.

    Every event but ``token`` is written exactly once, by the run's workflow
    code, so events of finished work appear once and in order across
    crashes. ``token`` events are written live from inside the completion
    step that streams them; ``data["completion"]`` names the completion and
    ``data["attempt"]`` the execution of that step. When a crash cuts a
    completion short, the recovered run executes it again under a new
    attempt; the ``llm_finished`` event of the completion names the attempt
    whose tokens are kept: tokens of any other attempt of that completion
    were cut short by a crash. A live reader that sees a token of a new
    attempt of a completion drops what it showed of the earlier attempt;
    :func:`kept_tokens` applies the rule to events already read.
    """

    offset: int
    kind: str
    workflow_id: str | None = None
    agent: str | None = None
    task: str | None = None
    text: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    at: float | None = None

    @classmethod
    def from_record(cls, offset: int, record: dict[str, Any]) -> StreamEvent:
        check_format(record, "stream event")
        return cls(
            offset=offset,
            kind=str(record["kind"]),
            workflow_id=record.get("workflow_id"),
            agent=record.get("agent"),
            task=record.get("task"),
            text=record.get("text"),
            data=dict(record.get("data") or {}),
            at=record.get("at"),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def kept_tokens(events: list[StreamEvent]) -> dict[str, str]:
    """The text each finished completion streamed, cut-short attempts left out.

    Keyed by completion id (``data["completion"]``); a completion that did
    not finish (the run is still going) is left out too.
    """
    kept = {
        str(e.data["completion"]): e.data.get("attempt")
        for e in events
        if e.kind == "llm_finished" and e.data.get("attempt")
    }
    texts: dict[str, str] = dict.fromkeys(kept, "")
    for event in events:
        completion = event.data.get("completion")
        if event.kind == "token" and completion in kept and event.data.get("attempt") == kept[completion]:
            texts[completion] += event.text or ""
    return texts


def event_record(
    kind: EventKind,
    *,
    workflow_id: str | None,
    at: float,
    agent: str | None = None,
    task: str | None = None,
    text: str | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A stream event as written to the database."""
    record: dict[str, Any] = {"format": FORMAT, "kind": kind, "workflow_id": workflow_id, "at": at}
    if agent is not None:
        record["agent"] = agent
    if task is not None:
        record["task"] = task
    if text is not None:
        record["text"] = text
    if data:
        record["data"] = data
    return record


def check_format(record: dict[str, Any], what: str) -> None:
    found = record.get("format", FORMAT)
    if not isinstance(found, int) or found > FORMAT:
        raise RecordFormatError(
            f"This {what} was written in crew_durable record format {found!r}, and this "
            f"crew_durable reads formats up to {FORMAT}. Upgrade crew_durable in this process."
        )
