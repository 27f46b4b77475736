"""The workflow side of a durable crew: what runs inside ``crew_durable.crew_kickoff``.

A kickoff runs crewAI's own ``Crew.kickoff`` on a copy of the registered
crew made for that run. Every task execution in it is an agent run (see
``_agent_run``), so a child workflow whose id DBOS derives from the
kickoff's. A recovered kickoff replays crewAI's orchestration: finished
tasks return their recorded outputs, which feed the next tasks' context,
and the interrupted task resumes inside, at its first unfinished step.

The workflow's inputs are plain JSON: the crew's name, the kickoff inputs,
and how this run was started (``run``: where its events go when it is part
of a larger run, whether its task total still has to be recorded).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from crewai import Crew
from crewai.core.providers.human_input import HumanInputProvider, reset_provider, set_provider
from crewai.crews.crew_output import CrewOutput
from dbos import DBOS, WorkflowSerializationFormat

from crew_durable import _registry, _stream, _usage
from crew_durable._dbos_internals import reserve_step_ranges, running_in
from crew_durable._outputs import crew_output_to_json
from crew_durable._protocol import ATTR_TASKS, KICKOFF_WORKFLOW
from crew_durable._runs import IDENTITY, identity, starting

KICKOFF_ASYNC = "crew_durable.crew_kickoff_async"
KICKOFF_FOR_EACH = "crew_durable.crew_kickoff_for_each"
KICKOFF_FOR_EACH_ASYNC = "crew_durable.crew_kickoff_for_each_async"

_handed_over: dict[str, HumanInputProvider] = {}
"""Human-input providers of callers that started a run on a DBOS thread, by workflow id."""


def hand_over_provider(workflow_id: str, provider: HumanInputProvider | None) -> None:
    """Let the run ``workflow_id``, executed on a DBOS thread, use the caller's provider."""
    if provider is not None:
        _handed_over[workflow_id] = provider


@DBOS.workflow(name=KICKOFF_WORKFLOW, serialization_type=WorkflowSerializationFormat.PORTABLE)
def crew_kickoff(crew_name: str, inputs: dict[str, Any], run: dict[str, Any] | None = None) -> dict[str, Any]:
    """One kickoff of a named crew, on a copy of the crew made for this run."""
    with _kickoff(crew_name, inputs, run) as kickoff:
        kickoff.output = kickoff.crew.kickoff(inputs=inputs)
    return kickoff.record()


@DBOS.workflow(name=KICKOFF_ASYNC, serialization_type=WorkflowSerializationFormat.PORTABLE)
async def crew_kickoff_async(
    crew_name: str, inputs: dict[str, Any], run: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One natively async kickoff (crewAI's ``Crew.akickoff``) of a named crew."""
    with _kickoff(crew_name, inputs, run) as kickoff:
        kickoff.output = await kickoff.crew.akickoff(inputs=inputs)
    return kickoff.record()


class _Kickoff:
    """One kickoff in progress: the crew copy it runs, and then what it returned."""

    def __init__(self, crew_name: str, inputs: dict[str, Any], crew: Crew) -> None:
        self.crew_name, self.inputs, self.crew = crew_name, inputs, crew
        self.output: Any = None

    def record(self) -> dict[str, Any]:
        """The kickoff's output as the workflow records it, naming what ran."""
        return {**crew_output_to_json(self.output), IDENTITY: identity("crew", self.crew_name, self.inputs)}


@contextmanager
def _kickoff(crew_name: str, inputs: dict[str, Any], run: dict[str, Any] | None) -> Iterator[_Kickoff]:
    """Everything around crewAI's kickoff inside the workflow: its events, usage, provider, failure."""
    run = run or {}
    kickoff = _Kickoff(crew_name, inputs, _copy_for_run(_registry.crew(crew_name)))
    _order_async_tasks(kickoff.crew)
    stream = _stream.stream_for(run.get("stream"), None, None)
    is_root = stream.run_id == stream.workflow_id
    tasks = len(kickoff.crew.tasks)
    with (
        _stream.writing_to(stream),
        _provider_handed_over(),
        _running(crew_name),
        _usage.collecting_run_usage() as usage,
    ):
        if run.get("record_tasks"):  # enqueued by a process without the crew code
            DBOS.update_workflow_attributes(stream.workflow_id, {ATTR_TASKS: tasks}, merge=True)
        if is_root:
            _stream.emit("run_started", data={"crew": crew_name, "inputs": inputs, "tasks": tasks})
        with _stream.reporting_failure(is_root):
            yield kickoff
        output = kickoff.output
        assert isinstance(output, CrewOutput)
        output.token_usage = _usage.as_metrics(usage.total)
        if is_root:
            _stream.emit("run_finished", text=output.raw, data={"status": "SUCCESS", "usage": usage.total})


@DBOS.workflow(name=KICKOFF_FOR_EACH_ASYNC, serialization_type=WorkflowSerializationFormat.PORTABLE)
async def crew_kickoff_for_each_async(crew_name: str, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One workflow whose children are a crew's native async kickoffs, one per input, run concurrently.

    Each child's id is taken, in input order, before the first ``await`` of
    its kickoff, so a replay gives each input its own recorded kickoff.
    """
    stream = _stream.stream_for(None, None, None)
    tasks = len(_registry.crew(crew_name).crew.tasks)

    async def one(each: dict[str, Any]) -> dict[str, Any]:
        with starting("crew", crew_name, **{ATTR_TASKS: tasks}) as start:
            return await crew_kickoff_async(crew_name, each, {"stream": start.stream})

    with _stream.writing_to(stream):
        _stream.emit("run_started", data={"crew": crew_name, "inputs": inputs, "tasks": tasks * len(inputs)})
        with _stream.reporting_failure(True):
            outputs = await asyncio.gather(*(one(each) for each in inputs))
        _stream.emit("run_finished", data={"status": "SUCCESS"})
    return list(outputs)


@DBOS.workflow(name=KICKOFF_FOR_EACH, serialization_type=WorkflowSerializationFormat.PORTABLE)
def crew_kickoff_for_each(crew_name: str, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One workflow whose children are a crew's kickoffs, one per input, in order."""
    stream = _stream.stream_for(None, None, None)
    tasks = len(_registry.crew(crew_name).crew.tasks)
    outputs = []
    with _stream.writing_to(stream):
        _stream.emit("run_started", data={"crew": crew_name, "inputs": inputs, "tasks": tasks * len(inputs)})
        with _stream.reporting_failure(True):
            for each in inputs:
                with starting("crew", crew_name, **{ATTR_TASKS: tasks}) as start:
                    outputs.append(crew_kickoff(crew_name, each, {"stream": start.stream}))
        _stream.emit("run_finished", data={"status": "SUCCESS"})
    return outputs


@contextmanager
def _provider_handed_over() -> Iterator[None]:
    workflow_id = DBOS.workflow_id
    provider = _handed_over.pop(workflow_id, None) if workflow_id else None
    if provider is None:
        yield
        return
    token = set_provider(provider)
    try:
        yield
    finally:
        reset_provider(token)


def _copy_for_run(durable: Any) -> Crew:
    crew: Crew = durable.crew.copy()
    if durable.planning_llm is not None:  # Crew.copy rebuilds the planning LLM from a dump
        crew.planning_llm = durable.planning_llm
    return crew


@contextmanager
def _running(crew_name: str) -> Iterator[None]:
    token = _registry.crew_in_progress.set(crew_name)
    try:
        yield
    finally:
        _registry.crew_in_progress.reset(token)


def _order_async_tasks(crew: Crew) -> None:
    """Give each ``async_execution`` task a fixed range of step ids, taken in task order.

    crewAI runs such a task in a thread of its own, so its child workflow
    would otherwise take the next step id whenever the thread got there.
    """
    for task in crew.tasks:
        if task.async_execution:
            object.__setattr__(task, "execute_async", _in_reserved_range(task.execute_async))


def _in_reserved_range(execute_async: Callable[..., Any]) -> Callable[..., Any]:
    def execute_async_in_range(*args: Any, **kwargs: Any) -> Any:
        ranges = reserve_step_ranges(1)
        with running_in(ranges[0] if ranges else None):  # the task's thread copies this context
            return execute_async(*args, **kwargs)

    return execute_async_in_range
