"""Durable waits for a person: task feedback and tool approvals, answered from any process.

A run that needs a person records an :class:`InputRequest` and waits for
the answer with ``DBOS.recv``: no thread polls, and a run recovered after any
number of crashes waits on, under the same request id, without asking
again. The request is recorded once (a step), announced once (an event of
the run's stream) and published in the waiting workflow's attributes, where
``CrewClient.pending_input`` finds it. Answers are DBOS messages keyed by
the request id, so at most one answer per request ever counts.

How a wait ends when nobody answers in time (``DBOSAgent(input_timeout=...)``):
feedback is taken as accepted (as pressing Enter on crewAI's console), an
approval as denied.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from crewai.agents.parser import AgentFinish
from crewai.core.providers.human_input import (
    AsyncExecutorContext,
    ExecutorContext,
    HumanInputProvider,
    SyncHumanInputProvider,
)
from dbos import DBOS

from crew_durable import _stream
from crew_durable._crewai_internals import contextual_human_input_provider
from crew_durable._errors import CrewDurableError
from crew_durable._protocol import (
    ATTR_REQUEST,
    ATTR_WAITING,
    InputKind,
    InputRequest,
    answer,
    check_format,
    request_id_for,
)
from crew_durable._step_config import StepConfig

WAIT_SLICE_SECONDS = 600.0
"""The longest single ``recv`` of a wait (see :func:`_waits`)."""


# -- asking -------------------------------------------------------------------


def _open_request(
    kind: InputKind,
    agent: str,
    task: str | None,
    message: str,
    tool: str | None,
    arguments: dict[str, Any] | None,
    timeout: float | None,
) -> dict[str, Any]:
    """The step that records the question and publishes it where clients look."""
    workflow_id, step_id = DBOS.workflow_id, DBOS.step_id
    assert workflow_id is not None and step_id is not None
    stream = _stream.current()
    request = InputRequest(
        request_id=request_id_for(workflow_id, step_id),
        run_id=stream.run_id if stream is not None else workflow_id,
        workflow_id=workflow_id,
        kind=kind,
        agent=agent,
        task=task,
        message=message,
        asked_at=time.time(),
        tool=tool,
        arguments=arguments,
        timeout_seconds=timeout,
    ).to_json()
    DBOS.update_workflow_attributes(workflow_id, {ATTR_WAITING: True, ATTR_REQUEST: request}, merge=True)
    return request


def ask(
    kind: InputKind,
    *,
    agent: str,
    task: str | None,
    message: str,
    tool: str | None = None,
    arguments: dict[str, Any] | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Ask a person from workflow code and wait durably; the answer message (or a timeout's)."""
    workflow_id = _workflow_code()
    options = StepConfig().options(f"{agent}.input.{kind}")
    request = DBOS.run_step(options, _open_request, kind, agent, task, message, tool, arguments, timeout)
    request_id = request["request_id"]
    _stream.emit("input_requested", text=message, data=request, agent=agent, task=task)
    decision = None
    for seconds in _waits(timeout):
        decision = DBOS.recv(request_id, seconds)
        if decision is not None:
            break
    if decision is None:
        # Claim the decision for the timeout. A person's answer that got in first
        # holds the key already, and then it is the one read back.
        DBOS.send(workflow_id, _timed_out(), request_id, idempotency_key=request_id)
        decision = DBOS.recv(request_id, 0)
    DBOS.update_workflow_attributes(workflow_id, _CLOSED, merge=True)
    return _answered(decision, request_id, agent, task)


async def ask_async(
    kind: InputKind,
    *,
    agent: str,
    task: str | None,
    message: str,
    tool: str | None = None,
    arguments: dict[str, Any] | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """:func:`ask` from async workflow code."""
    workflow_id = _workflow_code()
    options = StepConfig().options(f"{agent}.input.{kind}")
    request = await DBOS.run_step_async(
        options, _open_request, kind, agent, task, message, tool, arguments, timeout
    )
    request_id = request["request_id"]
    _stream.emit("input_requested", text=message, data=request, agent=agent, task=task)
    decision = None
    for seconds in _waits(timeout):
        decision = await DBOS.recv_async(request_id, seconds)
        if decision is not None:
            break
    if decision is None:
        await DBOS.send_async(workflow_id, _timed_out(), request_id, idempotency_key=request_id)
        decision = await DBOS.recv_async(request_id, 0)
    await DBOS.update_workflow_attributes_async(workflow_id, _CLOSED, merge=True)
    return _answered(decision, request_id, agent, task)


_CLOSED: dict[str, Any] = {ATTR_WAITING: False, ATTR_REQUEST: None}


def _workflow_code() -> str:
    workflow_id = DBOS.workflow_id
    if workflow_id is None or DBOS.step_id is not None:
        raise CrewDurableError("A durable question can only be asked from a durable run's workflow code.")
    return workflow_id


def _waits(timeout: float | None) -> Iterator[float]:
    """The waits, one ``recv`` each, that make up a wait of ``timeout`` seconds (forever: ``None``).

    A single ``recv`` of days would hold its thread for days after the run is
    cancelled (DBOS does not wake a waiting ``recv``): in slices of at most
    :data:`WAIT_SLICE_SECONDS`, a cancelled run lets its thread go at the end
    of the slice, when its next operation finds it cancelled. The slices
    depend only on ``timeout``, so a replay takes the same ones.
    """
    if timeout is not None and timeout <= WAIT_SLICE_SECONDS:
        yield timeout
        return
    slices = None if timeout is None else max(1, math.ceil(timeout / WAIT_SLICE_SECONDS))
    count = 0
    while slices is None or count < slices:
        count += 1
        if slices is not None and count == slices:
            yield timeout - (slices - 1) * WAIT_SLICE_SECONDS  # type: ignore[operator]
        else:
            yield WAIT_SLICE_SECONDS


def _timed_out() -> dict[str, Any]:
    return answer("timeout", uuid.uuid4().hex)


def _answered(decision: Any, request_id: str, agent: str, task: str | None) -> dict[str, Any]:
    if not isinstance(decision, dict):
        raise CrewDurableError(
            f"The answer to request {request_id!r} is not a crew_durable answer: {decision!r}"
        )
    check_format(decision, "answer")
    _stream.emit(
        "input_answered",
        text=_describe(decision),
        data={"request_id": request_id, "answer": decision},
        agent=agent,
        task=task,
    )
    return decision


def _describe(decision: dict[str, Any]) -> str:
    if decision["kind"] == "timeout":
        return "no answer in time"
    if decision["kind"] == "approval":
        return "approved" if decision.get("approved") else f"denied: {decision.get('reason') or ''}"
    text = str(decision.get("text") or "")
    return text if text.strip() else "accepted"


# -- task feedback (human_input=True) -------------------------------------------


class DurableFeedback(SyncHumanInputProvider):
    """crewAI's feedback loop, with each prompt a durable question instead of the console.

    A non-empty answer makes the agent revise and ask again; ``""`` accepts
    the answer, exactly as on crewAI's console.
    """

    def handle_feedback(self, formatted_answer: AgentFinish, context: ExecutorContext) -> AgentFinish:
        if context._is_training_mode():
            feedback = self._ask(formatted_answer, context)
            return self._handle_training_feedback(formatted_answer, feedback, context)
        answer_now = formatted_answer
        while context.ask_for_human_input:
            feedback = self._ask(answer_now, context)
            if feedback.strip() == "":
                context.ask_for_human_input = False
            else:
                context.messages.append(context._format_feedback_message(feedback))
                answer_now = context._invoke_loop()
        return answer_now

    async def handle_feedback_async(
        self, formatted_answer: AgentFinish, context: AsyncExecutorContext
    ) -> AgentFinish:
        if context._is_training_mode():
            feedback = await self._ask_async(formatted_answer, context)
            return await self._handle_training_feedback_async(formatted_answer, feedback, context)
        answer_now = formatted_answer
        while context.ask_for_human_input:
            feedback = await self._ask_async(answer_now, context)
            if feedback.strip() == "":
                context.ask_for_human_input = False
            else:
                context.messages.append(context._format_feedback_message(feedback))
                answer_now = await context._ainvoke_loop()
        return answer_now

    def _ask(self, current: AgentFinish, context: ExecutorContext) -> str:
        return _feedback_text(ask("feedback", **self._question(current, context)))

    async def _ask_async(self, current: AgentFinish, context: ExecutorContext) -> str:
        return _feedback_text(await ask_async("feedback", **self._question(current, context)))

    def _question(self, current: AgentFinish, context: ExecutorContext) -> dict[str, Any]:
        agent = context.agent
        stream = _stream.current()
        return {
            "agent": str(getattr(agent, "agent_name", agent.role)),
            "task": stream.task if stream is not None else None,
            "message": self._get_output_string(current),
            "timeout": getattr(agent, "input_timeout", None),
        }


def _feedback_text(decision: dict[str, Any]) -> str:
    """What the person said; a wait that timed out accepts the answer, as Enter would."""
    return str(decision.get("text") or "") if decision["kind"] == "feedback" else ""


_process_provider: HumanInputProvider | None = None


def set_human_input_provider(provider: HumanInputProvider | None) -> None:
    """Use ``provider`` for human feedback in every durable run of this process.

    crewAI's ``set_provider`` sets a provider for the current context only,
    and DBOS runs recovered, background and enqueued runs on threads of its
    own, which do not see it. A provider set here applies in every durable
    run path; one set with crewAI's ``set_provider`` in the context that
    kicks a run off still wins for that run. Without either, durable runs
    ask through :class:`~crew_durable.CrewClient` (``pending_input``,
    ``send_feedback``). Pass ``None`` to go back to that.
    """
    global _process_provider
    if provider is not None and not isinstance(provider, HumanInputProvider):
        raise TypeError(
            f"set_human_input_provider() takes a crewAI HumanInputProvider, got {type(provider).__name__}."
        )
    _process_provider = provider


def provider_for_run() -> HumanInputProvider:
    """The provider that answers feedback in a durable run.

    In order: a custom provider set with crewAI's ``set_provider`` in the
    run's context (a ``DBOSCrew.start()`` carries the caller's over to the
    thread DBOS runs it on); the process-wide one of
    :func:`set_human_input_provider`; else durable questions.
    """
    return contextual_human_input_provider() or _process_provider or DurableFeedback()


# -- tool approvals -------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    approved: bool
    reason: str


def decide_tool_call(agent: str, tool: str, arguments: dict[str, Any], timeout: float | None) -> Decision:
    """Ask a person whether the call of ``tool`` with exactly ``arguments`` may run."""
    stream = _stream.current()
    rendered = ", ".join(f"{name}={value!r}" for name, value in arguments.items())
    decision = ask(
        "approval",
        agent=agent,
        task=stream.task if stream is not None else None,
        message=f"{tool}({rendered})",
        tool=tool,
        arguments=arguments,
        timeout=timeout,
    )
    if decision["kind"] == "timeout":
        return Decision(False, f"no decision within {timeout:g} seconds" if timeout else "no decision")
    if decision.get("approved"):
        return Decision(True, "")
    return Decision(False, str(decision.get("reason") or "no reason given"))
