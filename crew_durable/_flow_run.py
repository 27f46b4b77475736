"""The workflow side of a durable flow: what runs inside ``crew_durable.flow_kickoff``.

A kickoff runs crewAI's own Flow engine (``Flow.kickoff``) on a new instance
of the registered flow class, so ``@start``, ``@listen``, ``@router``,
``and_``/``or_`` and ``@human_feedback`` behave as crewAI defines them. The
instance is made durable at four seams (``_crewai_internals.FLOW_SEAMS``):

- **each method call** is the child workflow ``crew_durable.flow_method``
  (its LLM completions, tools and ``DBOSCrew`` kickoffs are its steps and
  children). It records the method's result and the flow's state after it.
  A recovered kickoff runs the engine again: a finished call returns its
  recorded result and state, so routers take the recorded decision and
  listeners get the recorded values; the interrupted call resumes inside,
  at its first unfinished step.
- **calls run one at a time**, in the order crewAI starts them: listeners
  crewAI would run concurrently (several listeners of one event, racing
  ``or_`` branches) take turns, so every call gets the same child id on
  every replay. A branch that wants parallel work starts it inside one
  method (``DBOSCrew.start()`` handles, ``akickoff_for_each``).
- **``@human_feedback``** waits durably for an answer sent with
  ``CrewClient`` (or asks the provider the method names, its answer
  recorded); the outcome the LLM collapses the feedback to is a step.
- **``Flow.ask()``** waits durably the same way, inside the method's run.

A plain LLM called in a method outside any step would be paid again after a
crash; such calls are refused with an error that says how to wrap the LLM.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from crewai.flow.flow_config import flow_config
from crewai.flow.flow_context import current_flow_method_name
from crewai.hooks.dispatch import HookAborted, InterceptionPoint, register_scoped, scoped_hooks
from dbos import DBOS, WorkflowSerializationFormat

from crew_durable import _human_input, _registry, _stream
from crew_durable._crewai_internals import (
    flow_methods,
    replace_on_instance,
    resolve_feedback_provider,
    restore_flow_state,
    stamp_flow_state_id,
)
from crew_durable._errors import CrewDurableError, from_workflow_error
from crew_durable._flow_codec import decode, encode, state_to_json
from crew_durable._llm import DBOSLLM
from crew_durable._protocol import ATTR_TASK, FLOW_KICKOFF_WORKFLOW, FLOW_METHOD_WORKFLOW
from crew_durable._runs import IDENTITY, check_identity, identity, starting
from crew_durable._step_config import StepConfig

_STATE_IDS = uuid.UUID("6f1d2a52-2f4c-4d8e-9a51-6a3c1b0e7d10")
"""The namespace of the state ids a kickoff gives its flow (one per workflow id, the same on replay)."""


# -- the kickoff ----------------------------------------------------------------


@DBOS.workflow(name=FLOW_KICKOFF_WORKFLOW, serialization_type=WorkflowSerializationFormat.PORTABLE)
def flow_kickoff(flow_name: str, inputs: dict[str, Any], run: dict[str, Any] | None = None) -> dict[str, Any]:
    """One kickoff of a named flow, on a new instance of its class."""
    flow = durable_instance(flow_name)
    workflow_id = DBOS.workflow_id
    assert workflow_id is not None
    if "id" not in inputs:  # crewAI would pick a random one; a replay must get the same
        stamp_flow_state_id(flow, str(uuid.uuid5(_STATE_IDS, workflow_id)))
    stream = _stream.stream_for((run or {}).get("stream"), flow_name, None)
    is_root = stream.run_id == stream.workflow_id
    with _stream.writing_to(stream):
        if is_root:
            _stream.emit("run_started", data={"flow": flow_name, "inputs": inputs})
        with _stream.reporting_failure(is_root):
            output = flow.kickoff(inputs=inputs)
            record = {
                "result": encode(output, f"The result of flow {flow_name!r}"),
                "state": state_to_json(flow.state, flow_name),
                IDENTITY: identity("flow", flow_name, inputs),
            }
        if is_root:
            _stream.emit("run_finished", text=_text(output), data={"status": "SUCCESS"})
    return record


def durable_instance(flow_name: str) -> Any:
    """A new instance of the registered flow's class, with its seams made durable."""
    flow = _registry.flow(flow_name).flow_class()
    if getattr(flow, "stream", False):
        raise CrewDurableError(streaming_refused(flow_name))
    _DurableSeams(flow_name, flow)
    return flow


# -- one method call --------------------------------------------------------------


@dataclass
class _Call:
    """A method call in progress in this process: the live instance, the method and its arguments."""

    flow: Any
    method: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


_live: dict[str, _Call] = {}
"""Method calls started by a kickoff in this process, by child workflow id. A call DBOS
recovers on its own (its kickoff not yet there) runs on an instance rebuilt from its inputs."""


def streaming_refused(flow_name: str) -> str:
    return (
        f"Flow {flow_name!r} has stream=True, which DBOSFlow does not support: follow a durable "
        "flow's run, its tokens included, with CrewClient.stream(run_id) instead."
    )


@DBOS.workflow(name=FLOW_METHOD_WORKFLOW, serialization_type=WorkflowSerializationFormat.PORTABLE)
def flow_method(spec: dict[str, Any], run: dict[str, Any] | None = None) -> dict[str, Any]:
    """One call of a flow method; records its result and the flow's state after it."""
    workflow_id = DBOS.workflow_id
    assert workflow_id is not None
    call = _live.get(workflow_id) or _rebuilt(spec)
    name = f"{spec['flow']}.{spec['method']}"
    stream = _stream.stream_for((run or {}).get("stream"), spec["flow"], spec["method"])
    token = current_flow_method_name.set(spec["method"])
    try:
        with _stream.writing_to(stream), _refusing_plain_llm_calls(name):
            _stream.emit("method_started", text=spec["method"], data={"call": spec["call"]})
            result = _finished(call.method(*call.args, **call.kwargs))
            record = {
                "result": encode(result, f"The result of flow method {name!r}"),
                "state": state_to_json(call.flow.state, spec["flow"]),
                IDENTITY: _method_identity(spec["flow"], spec["method"], spec["call"]),
            }
            _stream.emit("method_finished", text=_text(result), data={"call": spec["call"]})
    finally:
        current_flow_method_name.reset(token)
    return record


def _rebuilt(spec: dict[str, Any]) -> _Call:
    flow = durable_instance(spec["flow"])
    restore_flow_state(flow, spec["state"])
    args = tuple(decode(each) for each in spec["args"])
    kwargs = {key: decode(each) for key, each in spec["kwargs"].items()}
    return _Call(flow, flow_methods(flow)[spec["method"]], args, kwargs)


def _method_identity(flow_name: str, method: str, call: int) -> dict[str, str]:
    return identity("flow_method", f"{flow_name}.{method}", {"call": call})


def _finished(result: Any) -> Any:
    """The result of a method, awaited if it is async (on a loop of its own, as the call has one thread)."""
    if inspect.isawaitable(result):
        return _run_coroutine(result)
    return result


def _run_coroutine(awaitable: Any) -> Any:
    async def wait() -> Any:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wait())
    outcome: dict[str, Any] = {}
    context = contextvars.copy_context()

    def run() -> None:
        try:
            outcome["value"] = context.run(asyncio.run, wait())
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, name="crew_durable-flow-method")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@contextmanager
def _refusing_plain_llm_calls(method: str) -> Iterator[None]:
    """Refuse a completion requested in the method outside any step: a crash would pay for it again."""

    def guard(context: Any) -> None:
        if DBOS.step_id is not None or isinstance(context.llm, DBOSLLM):
            return
        model = getattr(context.llm, "model", type(context.llm).__name__)
        agent = getattr(context.agent, "role", None) if context.agent is not None else None
        if agent is not None:
            how = (
                f"the plain crewAI Agent {agent!r} was kicked off in it. Wrap the agent at module "
                f"level, DBOSAgent(agent_name=..., orig_agent=agent), and kick that off: its run is "
                "then a child workflow whose completions are steps."
            )
        else:
            how = (
                f"it called the plain LLM {model!r}. Wrap the LLM at module level, "
                f'DBOSLLM.around(llm, "{method}.llm"), and call that: each completion is then a step.'
            )
        raise HookAborted(
            f"Durable flow method {method!r} requested a completion that no step records, so a "
            f"crash would pay for it again: {how}",
            source="crew_durable",  # a name, not the hook: the error is recorded with the run
        )

    with scoped_hooks():
        register_scoped(InterceptionPoint.PRE_MODEL_CALL, guard)
        yield


# -- the seams of one flow instance ------------------------------------------------


class _DurableSeams:
    """What a durable run changes on one flow instance (never on its class)."""

    def __init__(self, flow_name: str, flow: Any) -> None:
        self.flow_name, self.flow = flow_name, flow
        self.calls: dict[str, int] = {}
        self.turns: asyncio.Lock | None = None
        self.execute_method = replace_on_instance(flow, "_execute_method", self._execute_method)
        self.feedback_step = replace_on_instance(flow, "_run_human_feedback_step", self._feedback_step)
        self.collapse = replace_on_instance(flow, "_collapse_to_outcome", self._collapse)
        self.plain_ask = replace_on_instance(flow, "ask", self._ask)

    async def _execute_method(
        self, method_name: str, method: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        """crewAI's method execution, with the method a child workflow, one call at a time.

        The turn is taken before anything is recorded and held through the
        human feedback step, so the kickoff's operations are numbered the
        same on every replay whatever order concurrent listeners finish in.
        """
        if self.turns is None:
            self.turns = asyncio.Lock()
        async with self.turns:
            return await self.execute_method(
                method_name, self._as_child(method_name, method), *args, **kwargs
            )

    def _as_child(
        self, method_name: str, method: Callable[..., Any]
    ) -> Callable[..., Coroutine[Any, Any, Any]]:
        async def durable_method(*args: Any, **kwargs: Any) -> Any:
            call = self.calls[method_name] = self.calls.get(method_name, 0) + 1
            context = contextvars.copy_context()
            return await asyncio.to_thread(context.run, self._call, method_name, call, method, args, kwargs)

        return durable_method

    def _call(
        self,
        method_name: str,
        call: int,
        method: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        name = f"{self.flow_name}.{method_name}"
        spec = {
            "flow": self.flow_name,
            "method": method_name,
            "call": call,
            "state": state_to_json(self.flow.state, self.flow_name),
            "args": [encode(each, f"Argument {n} of flow method {name!r}") for n, each in enumerate(args)],
            "kwargs": {
                key: encode(each, f"Argument {key!r} of flow method {name!r}") for key, each in kwargs.items()
            },
        }
        with starting("flow_method", name, **{ATTR_TASK: {"name": method_name, "call": call}}) as start:
            _live[start.workflow_id] = _Call(self.flow, method, args, kwargs)
            try:
                record = flow_method(spec, {"stream": start.stream})
            except Exception as error:
                raise from_workflow_error(error) from None
            finally:
                _live.pop(start.workflow_id, None)
        check_identity(record, _method_identity(self.flow_name, method_name, call), start.workflow_id)
        restore_flow_state(self.flow, record["state"])
        return decode(record["result"])

    # -- people --------------------------------------------------------------------

    async def _feedback_step(self, method_name: str, definition: Any, method_output: Any) -> Any:
        """crewAI's ``@human_feedback`` step, with the person's answer waited for durably (or recorded)."""
        provider = resolve_feedback_provider(self.flow, definition)
        review = _Review(self.flow_name) if provider is None else _RecordedReview(self.flow_name, provider)
        durable = definition.model_copy(update={"provider": review})
        return await self.feedback_step(method_name, durable, method_output)

    def _collapse(self, feedback: str, outcomes: Any, llm: Any) -> str:
        """Which outcome the feedback means, as the LLM said the first time (a step)."""
        options = StepConfig().options(f"{self.flow_name}.feedback_outcome")
        return str(DBOS.run_step(options, self.collapse, feedback, outcomes, llm))

    def _ask(
        self, message: str, timeout: float | None = None, metadata: dict[str, Any] | None = None
    ) -> str | None:
        """``Flow.ask()``: a durable question (or the flow's input provider, its answer recorded)."""
        if self.flow.input_provider is not None or flow_config.input_provider is not None:
            options = StepConfig().options(f"{self.flow_name}.ask")
            answer = DBOS.run_step(options, self.plain_ask, message, timeout, metadata)
            return None if answer is None else str(answer)
        decision = _human_input.ask(
            "feedback",
            agent=self.flow_name,
            task=current_flow_method_name.get(None),
            message=message,
            timeout=timeout,
        )
        return None if decision["kind"] == "timeout" else str(decision.get("text") or "")


class _Review:
    """A ``@human_feedback`` review as a durable question, answered with ``CrewClient.send_feedback``."""

    def __init__(self, flow_name: str) -> None:
        self.flow_name = flow_name

    def request_feedback(self, context: Any, flow: Any) -> str:
        decision = _human_input.ask(
            "feedback",
            agent=self.flow_name,
            task=str(context.method_name),
            message=f"{context.message}\n\n{_text(context.method_output)}",
        )
        return str(decision.get("text") or "") if decision["kind"] == "feedback" else ""


class _RecordedReview:
    """The review provider a ``@human_feedback`` method names, its answer recorded as a step."""

    def __init__(self, flow_name: str, provider: Any) -> None:
        self.flow_name, self.provider = flow_name, provider

    def request_feedback(self, context: Any, flow: Any) -> str:
        options = StepConfig().options(f"{self.flow_name}.{context.method_name}.review")
        return str(DBOS.run_step(options, self._ask, context, flow))

    def _ask(self, context: Any, flow: Any) -> str:
        answer = self.provider.request_feedback(context, flow)
        if inspect.isawaitable(answer):
            answer = _run_coroutine(answer)
        return str(answer)


def _text(value: Any) -> str:
    raw = getattr(value, "raw", None)
    return str(raw if isinstance(raw, str) else value)
