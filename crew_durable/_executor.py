"""The launcher side of a durable agent run: ``DurableAgentExecutor``.

``DurableAgentExecutor`` is the ``executor_class`` of every ``DBOSAgent``.
crewAI creates one per agent and reuses it across tasks; its ``invoke`` does
not run the agent loop itself: it describes the run as plain JSON and calls
the ``crew_durable.agent_run`` workflow with that description (the workflow
side is ``_agent_run``), then takes the recorded outcome as if it had run
the loop itself (its messages, its LLMs' usage counters).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ClassVar

from crewai.agents.agent_builder.base_agent import BaseAgent
from crewai.agents.agent_executor import AgentExecutor
from crewai.flow.flow_definition import FlowDefinition
from crewai.task import Task
from crewai.utilities.agent_utils import is_inside_event_loop
from crewai.utilities.prompts import StandardPromptResult, SystemPromptResult
from dbos import DBOS

from crew_durable import _registry, _tool_sources, _usage
from crew_durable._agent_run import (
    _SETTINGS,
    Configuration,
    agent_name,
    agent_run,
    agent_run_async,
    identity_of,
    launched_by,
    task_label,
)
from crew_durable._crewai_internals import event_handler_tables
from crew_durable._dbos_internals import dbos_launched
from crew_durable._errors import CrewDurableError, from_workflow_error
from crew_durable._protocol import ATTR_TASK
from crew_durable._runs import check_identity, starting
from crew_durable._serialization import dumps, model_path, value_from_json


class DurableAgentExecutor(AgentExecutor):
    """crewAI's ``AgentExecutor`` whose ``invoke`` runs as a DBOS workflow."""

    # A crewAI Flow builds its definition from the class's own __dict__; without
    # this a subclass would have no start method and end with no answer.
    _flow_definition: ClassVar[FlowDefinition | None] = AgentExecutor.flow_definition()

    def invoke(self, inputs: dict[str, Any]) -> Any:
        if is_inside_event_loop():
            return self.invoke_async(inputs)
        spec = self._describe_run(inputs)
        try:
            with launched_by(self), self._starting(spec) as workflow_id:
                outcome = agent_run(spec)
        except Exception as error:
            raise from_workflow_error(error) from None
        check_identity(outcome, identity_of(spec), workflow_id)
        return self._adopt(outcome)

    async def invoke_async(self, inputs: dict[str, Any]) -> dict[str, Any]:
        spec = self._describe_run(inputs)
        try:
            with launched_by(self), self._starting(spec) as workflow_id:
                outcome = await agent_run_async(spec)
        except Exception as error:
            raise from_workflow_error(error) from None
        check_identity(outcome, identity_of(spec), workflow_id)
        return self._adopt(outcome)

    @contextmanager
    def _starting(self, spec: dict[str, Any]) -> Iterator[str]:
        """Start the run's workflow as an agent run of its root run, under an id known in advance."""
        task = spec["task"]
        label = {"name": task_label(task)} if task is not None else None
        with starting("agent", spec["agent"], **{ATTR_TASK: label}) as start:
            spec["stream"] = start.stream
            timed = _timed_runs.get()
            if timed is not None:  # under max_execution_time: cancelled by id when time is up
                timed.append(start.workflow_id)
            yield start.workflow_id

    def _describe_run(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Everything a new process needs to run this agent run again, as JSON."""
        if not dbos_launched():
            raise CrewDurableError(
                f"Agent {agent_name(self)!r} runs each task as a DBOS workflow: configure "
                "DBOS(config=...) and call DBOS.launch() before running it."
            )
        _refuse_durable_event_handlers()
        spec = {
            "agent": agent_name(self),
            "crew": _registry.crew_in_progress.get(),
            "task": _task_to_json(self.task),
            "inputs": inputs,
            "prompt": _prompt_to_json(self.prompt),
            "stop_words": list(self.stop_words),
            "tools": _tool_sources.describe(self.original_tools, _agent_of(self), self.task),
            "response_model": model_path(self.response_model) if self.response_model else None,
            "settings": {name: getattr(self, name) for name in _SETTINGS},
        }
        dumps(spec, f"The inputs of agent {agent_name(self)!r}'s run")
        return spec

    def _adopt(self, outcome: dict[str, Any]) -> dict[str, Any]:
        """Take a finished run's outcome as if this executor had run it."""
        self.state.messages = list(outcome["messages"])
        usage = outcome["usage"]
        for llm, role in ((self.llm, "llm"), (self.function_calling_llm, "function_calling_llm")):
            if llm is not None and role in usage:
                _usage.add_to_counters(llm, usage[role])
        _usage.report_child(usage["total"])
        return {"output": value_from_json(outcome["output"])}

    def _fork(self) -> Configuration:
        """This executor's configuration, for a run in this process."""
        return Configuration(
            self.agent,
            task=self.task,
            crew=self.crew,
            raw_tools=list(self.original_tools),
            prompt=self.prompt,
            stop_words=list(self.stop_words),
            response_model=self.response_model,
            settings={name: getattr(self, name) for name in _SETTINGS},
            callbacks=list(self.callbacks),
        )


def _refuse_durable_event_handlers() -> None:
    """Refuse to run while a crewAI event handler is a DBOS step or workflow.

    crewAI runs event handlers in a thread pool, in the emitting run's
    context: such a handler would take step ids in the middle of the run, in
    whatever order the pool gets to it, and a recovered run would not find
    its steps where it recorded them.
    """
    for table in event_handler_tables():
        for event_type, handlers in table.items():
            for handler in handlers:
                if hasattr(handler, "dbos_function_name"):
                    raise CrewDurableError(
                        f"The crewAI event handler {handler.__qualname__} for {event_type.__name__} "
                        "is a DBOS step or workflow. crewAI runs handlers in a thread pool in the "
                        "middle of a durable run, so its step ids would change from run to run. "
                        "Make the handler a plain function; to record something durably from it, "
                        "start a separate workflow with DBOS.start_workflow from a handler that is "
                        "not itself a step."
                    )


_timed_runs: ContextVar[list[str] | None] = ContextVar("crew_durable_timed_runs", default=None)


@contextmanager
def cancelled_on_timeout(timeout: float) -> Iterator[None]:
    """Cancel the agent runs started in this block once ``timeout`` seconds have passed.

    crewAI enforces ``max_execution_time`` by waiting ``timeout`` seconds for
    the run's thread, and then, before raising ``TimeoutError``, waits for
    that thread to finish anyway: the run goes on calling the model. Once the
    time is up the run's workflow is cancelled, so it stops at its next step
    (DBOS refuses to start a step of a cancelled workflow), crewAI raises at
    once, and a later launch does not resume it.
    """
    started: list[str] = []
    token = _timed_runs.set(started)
    # A little after crewAI stops waiting, so crewAI times out rather than failing.
    timer = threading.Timer(timeout + 0.05, _cancel, args=(started,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        _timed_runs.reset(token)


def _cancel(workflow_ids: list[str]) -> None:
    # A timer thread has no DBOS context: the cancellation is not recorded as a
    # step of any workflow, where it would land at a point that depends on timing.
    for workflow_id in workflow_ids:
        DBOS.cancel_workflow(workflow_id)


def _agent_of(executor: AgentExecutor) -> BaseAgent:
    if executor.agent is None:
        raise CrewDurableError("DurableAgentExecutor has no agent: it is created by DBOSAgent.")
    return executor.agent


def _prompt_to_json(prompt: SystemPromptResult | StandardPromptResult | None) -> dict[str, Any] | None:
    if prompt is None:
        return None
    return {"system_prompt": isinstance(prompt, SystemPromptResult), **prompt.model_dump()}


def _task_to_json(task: Task | None) -> dict[str, Any] | None:
    if task is None:
        return None
    return {
        "description": task.description,
        "expected_output": task.expected_output,
        "name": task.name,
        "human_input": task.human_input,
    }
