"""CrewClient: everything a process can do with durable runs knowing only the database URL.

A web backend, a script or an operator's shell does not import the
application's agents and crews. It reads what runs recorded (their
attributes, their event streams, their outputs) and sends what they wait
for (answers), through DBOS's own ``DBOSClient``. Runs execute wherever the
crew code runs: the application's processes, or ``crew-durable worker``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbos import DBOSClient, EnqueueOptions, WorkflowSerializationFormat, WorkflowStatus
from sqlalchemy.exc import OperationalError
from typing_extensions import Self

from crew_durable import _inspect, _operations
from crew_durable._dbos_internals import message_sent_with_key, migration_versions
from crew_durable._errors import (
    AnswerRefusedError,
    DatabaseNotReadyError,
    UnknownRunError,
    from_workflow_error,
)
from crew_durable._inspect import RunSummary, RunTree
from crew_durable._protocol import (
    ATTR_FORMAT,
    ATTR_KIND,
    ATTR_REQUEST,
    ATTR_RUN,
    ATTR_WAITING,
    FLOW_KICKOFF_WORKFLOW,
    KICKOFF_WORKFLOW,
    STREAM_KEY,
    WAITING_WORKFLOWS,
    InputKind,
    InputRequest,
    RunKind,
    StreamEvent,
    answer,
    run_attributes,
    workflow_of_request,
)
from crew_durable._serialization import checked_inputs, value_from_json

_WAITING_STATUSES = ("PENDING", "ENQUEUED")


class CrewClient:
    """Answer, watch and steer durable runs from any process, with only the system database URL.

    ``url`` is the DBOS system database (``postgresql://...`` or
    ``sqlite:///app.sqlite``); by default ``$DBOS_SYSTEM_DATABASE_URL``.
    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, url: str | None = None, *, polling_interval_seconds: float = 0.1) -> None:
        url = url or os.environ.get("DBOS_SYSTEM_DATABASE_URL")
        if not url:
            raise DatabaseNotReadyError(
                "CrewClient needs the DBOS system database URL of your application: "
                "CrewClient('postgresql://...') or CrewClient('sqlite:///app.sqlite'), "
                "or set DBOS_SYSTEM_DATABASE_URL."
            )
        self.url = url
        self._polling = polling_interval_seconds
        _check_sqlite_file(url)
        try:
            self._dbos = DBOSClient(system_database_url=url, use_listen_notify=url.startswith("postgres"))
        except OperationalError as error:
            raise DatabaseNotReadyError(
                f"Cannot reach the system database {_safe(url)}: {error.orig}. Check the URL, and "
                "that the database exists (your application creates it on its first DBOS.launch())."
            ) from None
        recorded, known = migration_versions(self._dbos)
        if recorded not in known:
            expected = max(known)
            self._dbos.destroy()
            if recorded == 0:
                raise DatabaseNotReadyError(
                    f"No DBOS application has created its tables in {_safe(url)} yet. Start a process "
                    "that defines your crews and calls DBOS.launch() once (it creates them), then retry."
                )
            if recorded < expected:
                raise DatabaseNotReadyError(
                    f"The system database {_safe(url)} is at DBOS schema version {recorded}, and this "
                    f"process's dbos expects {expected}: an application is migrating it now (retry in a "
                    "moment), or runs an older dbos (upgrade it; its next launch migrates)."
                )
            raise DatabaseNotReadyError(
                f"The system database {_safe(url)} is at DBOS schema version {recorded}, newer than "
                f"the {expected} this process's dbos knows: upgrade dbos here to match the application."
            )

    def close(self) -> None:
        self._dbos.destroy()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- people -----------------------------------------------------------

    def pending_input(self, run_id: str | None = None) -> list[InputRequest]:
        """The open requests of one run (or of every run), newest first."""
        wanted: dict[str, Any] = {ATTR_WAITING: True}
        if run_id is not None:
            wanted[ATTR_RUN] = run_id
        if self.url.startswith("sqlite"):  # DBOS filters by attributes on Postgres only
            found = self._dbos.list_workflows(
                status=list(_WAITING_STATUSES),
                name=list(WAITING_WORKFLOWS),
                load_input=False,
                load_output=False,
            )
        else:
            found = self._dbos.list_workflows(
                status=list(_WAITING_STATUSES), attributes=wanted, load_input=False, load_output=False
            )
        requests = [
            request
            for status in found
            if all((status.attributes or {}).get(key) == value for key, value in wanted.items())
            and (request := _open_request_of(status)) is not None
            # answered while the run was down or busy: it takes the answer when it gets there
            and message_sent_with_key(self._dbos, request.workflow_id, request.request_id) is None
        ]
        return sorted(requests, key=lambda request: request.asked_at, reverse=True)

    def send_feedback(self, request_id: str, text: str) -> None:
        """Answer a feedback request: a non-empty text makes the agent revise, ``""`` accepts."""
        if not isinstance(text, str):
            raise TypeError(f"Feedback is text; got {type(text).__name__}.")
        self._answer(request_id, "feedback", text=text)

    def approve(self, request_id: str) -> None:
        """Approve the tool call a request describes: it runs, once."""
        self._answer(request_id, "approval", approved=True)

    def deny(self, request_id: str, reason: str) -> None:
        """Deny the tool call a request describes: it does not run, and the model is told ``reason``."""
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError("deny() needs a reason: the model receives it as the tool's result.")
        self._answer(request_id, "approval", approved=False, reason=reason)

    def request(self, request_id: str) -> InputRequest | None:
        """The request ``request_id`` if it is open, else ``None``."""
        workflow_id = workflow_of_request(request_id)
        status = self._status(workflow_id) if workflow_id else None
        open_request = _open_request_of(status)
        return open_request if open_request and open_request.request_id == request_id else None

    def _answer(self, request_id: str, kind: InputKind, **content: Any) -> None:
        workflow_id = workflow_of_request(request_id)
        status = self._status(workflow_id) if workflow_id else None
        if workflow_id is None or status is None:
            raise AnswerRefusedError(
                f"{request_id!r} is not the id of a request in this database. Request ids look like "
                "'<workflow id>#<number>'; list the open ones with pending_input()."
            )
        open_request = _open_request_of(status)
        if open_request is None or open_request.request_id != request_id:
            decided = message_sent_with_key(self._dbos, workflow_id, request_id)
            if decided is not None:
                raise AnswerRefusedError(f"Request {request_id!r} was already {_decided(decided)}.")
            raise AnswerRefusedError(
                f"Request {request_id!r} is not open: its run ({status.status}) does not wait for it."
            )
        if open_request.kind != kind:
            how = "approve() or deny()" if open_request.kind == "approval" else "send_feedback()"
            raise AnswerRefusedError(
                f"Request {request_id!r} asks for {open_request.kind}: answer it with {how}."
            )
        if status.status not in _WAITING_STATUSES:
            raise AnswerRefusedError(f"Request {request_id!r} no longer waits: its run is {status.status}.")
        message = answer(kind, uuid.uuid4().hex, **content)
        self._dbos.send(workflow_id, message, request_id, idempotency_key=request_id)
        decided = message_sent_with_key(self._dbos, workflow_id, request_id)
        if decided is None or decided.get("answer_id") != message["answer_id"]:
            raise AnswerRefusedError(f"Request {request_id!r} was already {_decided(decided)}.")

    # -- watching -----------------------------------------------------------

    def stream(self, run_id: str, offset: int = 0) -> Iterator[StreamEvent]:
        """The run's events from ``offset`` on, live; the iteration ends when the run ends.

        Resume from any offset: pass the last offset you handled, plus one.
        """
        if offset < 0:
            raise ValueError(f"Stream offsets start at 0, got {offset}.")
        self._run_status(run_id)
        values = self._dbos.read_stream(run_id, STREAM_KEY, offset=offset, polling_interval_sec=self._polling)
        for position, value in enumerate(values, start=offset):
            yield StreamEvent.from_record(position, value)

    def result(self, run_id: str, timeout_seconds: float | None = None) -> Any:
        """The output of a run: a crew's ``CrewOutput``; waits while the run is pending."""
        status = self._run_status(run_id)
        handle: Any = self._dbos.retrieve_workflow(run_id)
        try:
            output = handle.get_result(polling_interval_sec=self._polling)
        except Exception as error:
            raise from_workflow_error(error) from None
        return _output_of(status, output)

    # -- running and steering -------------------------------------------------

    def enqueue(
        self,
        crew_name: str,
        inputs: dict[str, Any] | None = None,
        *,
        queue_name: str,
        run_id: str | None = None,
        deduplication_id: str | None = None,
        priority: int | None = None,
        timeout_seconds: float | None = None,
        application_version: str | None = None,
    ) -> RunHandle:
        """Put a kickoff of the crew ``crew_name`` on a DBOS queue; a worker of that queue runs it.

        Enqueueing a ``run_id`` that exists gives that run, not a second one.
        The options are DBOS's (see ``DBOSCrew.enqueue``); a run without an
        ``application_version`` is run by executors of the latest version.
        """
        options = _EnqueueOptions(run_id, deduplication_id, priority, timeout_seconds, application_version)
        return self._enqueue(
            KICKOFF_WORKFLOW, "crew", crew_name, inputs, queue_name, options, {"record_tasks": True}
        )

    def enqueue_flow(
        self,
        flow_name: str,
        inputs: dict[str, Any] | None = None,
        *,
        queue_name: str,
        run_id: str | None = None,
        deduplication_id: str | None = None,
        priority: int | None = None,
        timeout_seconds: float | None = None,
        application_version: str | None = None,
    ) -> RunHandle:
        """Put a kickoff of the flow ``flow_name`` (a ``DBOSFlow``) on a DBOS queue, as :meth:`enqueue`."""
        options = _EnqueueOptions(run_id, deduplication_id, priority, timeout_seconds, application_version)
        return self._enqueue(FLOW_KICKOFF_WORKFLOW, "flow", flow_name, inputs, queue_name, options, None)

    def _enqueue(
        self,
        workflow_name: str,
        kind: RunKind,
        name: str,
        inputs: dict[str, Any] | None,
        queue_name: str,
        given: _EnqueueOptions,
        run: dict[str, Any] | None,
    ) -> RunHandle:
        checked = checked_inputs(inputs, f"The kickoff inputs of {kind} {name!r}")
        run_id = given.run_id or str(uuid.uuid4())
        options: EnqueueOptions = {
            "workflow_name": workflow_name,
            "queue_name": queue_name,
            "workflow_id": run_id,
            "attributes": run_attributes(kind, name, run_id),
            "serialization_type": WorkflowSerializationFormat.PORTABLE,
        }
        if given.deduplication_id is not None:
            options["deduplication_id"] = given.deduplication_id
        if given.priority is not None:
            options["priority"] = given.priority
        if given.timeout_seconds is not None:
            options["workflow_timeout"] = given.timeout_seconds
        if given.application_version is not None:
            options["app_version"] = given.application_version
        self._dbos.enqueue(options, name, checked, run)
        return RunHandle(self, run_id)

    def cancel(self, run_id: str) -> None:
        """Cancel a run, its task runs included: whatever runs stops at its next step."""
        _operations.cancel(self._dbos, run_id)

    def resume(self, run_id: str) -> RunHandle:
        """Resume a cancelled run, its cancelled task runs included, where it stopped."""
        _operations.resume(self._dbos, run_id)
        return RunHandle(self, run_id)

    def fork(
        self,
        run_id: str,
        *,
        task: int,
        step: int | None = None,
        application_version: str | None = None,
        queue_name: str | None = None,
    ) -> RunHandle:
        """A new run that reuses what ``run_id`` recorded before task ``task`` (before its step ``step``).

        It runs wherever the crew code runs: a process of the application of
        ``application_version`` (by default the latest), or a worker of
        ``queue_name``. Nothing recorded before the fork point is paid again.
        """
        fork_id = _operations.fork(
            self._dbos, run_id, task, step, application_version=application_version, queue_name=queue_name
        )
        return RunHandle(self, fork_id)

    # -- inspecting -----------------------------------------------------------

    def runs(
        self,
        *,
        status: str | list[str] | None = None,
        name: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = 50,
    ) -> list[RunSummary]:
        """Runs, newest first: status, tasks done/total, LLM calls, tokens, duration.

        ``since`` and ``until`` are Unix times the runs started after or before.
        """
        return _inspect.runs(self._dbos, status=status, name=name, since=since, until=until, limit=limit)

    def show(self, run_id: str) -> RunTree:
        """A run's tree: its tasks, their completions, tool calls, questions and child runs."""
        self._run_status(run_id)
        found = _inspect.tree(self._dbos, run_id)
        if found is None:
            raise UnknownRunError(f"No run has the id {run_id!r} in {_safe(self.url)}.")
        return found

    def status(self, run_id: str) -> WorkflowStatus:
        """DBOS's status record of a run (``.status`` is PENDING, SUCCESS, ERROR, CANCELLED...)."""
        return self._run_status(run_id)

    # -- helpers ------------------------------------------------------------

    def _status(self, workflow_id: str) -> WorkflowStatus | None:
        found = self._dbos.list_workflows(workflow_ids=[workflow_id], load_input=False, load_output=False)
        return found[0] if found else None

    def _run_status(self, run_id: str) -> WorkflowStatus:
        status = self._status(run_id)
        if status is None:
            raise UnknownRunError(f"No run has the id {run_id!r} in {_safe(self.url)}.")
        if not status.attributes or ATTR_FORMAT not in status.attributes:
            raise UnknownRunError(
                f"Workflow {run_id!r} is not a crew_durable run (it is {status.name!r}): CrewClient "
                "reads the runs of DBOSCrew, DBOSAgent and DBOSFlow."
            )
        return status


class RunHandle:
    """A run started or steered through ``CrewClient``: its id, its status, its output."""

    def __init__(self, client: CrewClient, run_id: str) -> None:
        self._client = client
        self.workflow_id = run_id

    def get_workflow_id(self) -> str:
        return self.workflow_id

    def get_status(self) -> WorkflowStatus:
        return self._client.status(self.workflow_id)

    def get_result(self) -> Any:
        """The run's output (a crew's ``CrewOutput``), once it has one."""
        return self._client.result(self.workflow_id)

    def __repr__(self) -> str:
        return f"RunHandle({self.workflow_id!r})"


def _open_request_of(status: WorkflowStatus | None) -> InputRequest | None:
    if status is None or not status.attributes or not status.attributes.get(ATTR_WAITING):
        return None
    data = status.attributes.get(ATTR_REQUEST)
    return InputRequest.from_json(data) if isinstance(data, dict) else None


@dataclass(frozen=True)
class _EnqueueOptions:
    """DBOS's options for one enqueued run (see ``CrewClient.enqueue``)."""

    run_id: str | None
    deduplication_id: str | None
    priority: int | None
    timeout_seconds: float | None
    application_version: str | None


def _decided(decision: dict[str, Any] | None) -> str:
    if decision is None:
        return "answered"
    if decision.get("kind") == "timeout":
        return "closed: the run stopped waiting when its timeout passed"
    if decision.get("kind") == "approval":
        return "approved" if decision.get("approved") else f"denied ({decision.get('reason')})"
    return "answered"


def _output_of(status: WorkflowStatus, output: Any) -> Any:
    kind = (status.attributes or {}).get(ATTR_KIND)
    if kind == "crew" and isinstance(output, dict):
        from crew_durable._outputs import crew_output_from_json  # crewAI: only for processes that ask

        return crew_output_from_json(output)
    if kind == "flow" and isinstance(output, dict) and "result" in output:
        from crew_durable._flow_codec import decode  # crewAI: only for processes that ask

        return decode(output["result"])
    if kind == "agent" and isinstance(output, dict) and "output" in output:
        return value_from_json(output["output"])
    return output


def _check_sqlite_file(url: str) -> None:
    if not url.startswith("sqlite:///"):
        return
    path = Path(url.removeprefix("sqlite:///").split("?", 1)[0])
    if not path.exists():
        raise DatabaseNotReadyError(
            f"The SQLite system database {path} does not exist. Point CrewClient at the file your "
            "application uses (it is created by the application's first DBOS.launch())."
        )


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"
