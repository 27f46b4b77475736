"""The workflow side of an agent run: what runs inside ``crew_durable.agent_run``.

An agent run (one ``execute_task`` of a ``DBOSAgent``) is a workflow whose
inputs describe the run as plain JSON (``_executor`` writes them). Inside, a
``RunExecutor``, crewAI's own ``AgentExecutor`` with the few changes a
durable run needs, runs crewAI's loop: built from the live launcher's
objects when the caller is in this process, or rebuilt from the JSON and the
registry of named agents when DBOS recovers the run in a new process. Either
way the same code runs the same loop, and every completion in it is a step
(its LLMs are ``DBOSLLM``s). What the run returns (the output, the
conversation, the usage) is recorded as JSON and adopted by the launcher.

A recovered crew run goes: ``_crew_run`` (the kickoff replays crewAI's
orchestration) -> this module (each task's run replays its finished steps)
-> ``_llm`` (each completion step returns its record).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from crewai.agents.agent_executor import AgentExecutor
from crewai.agents.parser import AgentFinish
from crewai.core.providers.human_input import reset_provider, set_provider
from crewai.flow.flow_definition import FlowDefinition
from crewai.task import Task
from crewai.utilities.agent_utils import get_tool_names, parse_tools, render_text_description_and_args
from crewai.utilities.planning_types import TodoItem
from crewai.utilities.prompts import StandardPromptResult, SystemPromptResult
from crewai.utilities.step_execution_context import StepExecutionContext
from crewai.utilities.token_counter_callback import TokenCalcHandler
from dbos import DBOS, WorkflowSerializationFormat
from pydantic import PrivateAttr

from crew_durable import _registry, _stream, _tool_events, _tool_sources, _usage
from crew_durable._crewai_internals import rpm_controller, token_process, use_stable_artifact_names
from crew_durable._dbos_internals import DBOSContext, reserve_step_ranges, running_in, switch_to
from crew_durable._errors import CrewDurableError
from crew_durable._human_input import provider_for_run
from crew_durable._llm import fresh, in_workflow, reset
from crew_durable._runs import IDENTITY, identity
from crew_durable._serialization import dumps, import_model, value_to_json
from crew_durable._step_config import StepConfig
from crew_durable._tool_steps import durable_memory_tools

if TYPE_CHECKING:
    from crew_durable._executor import DurableAgentExecutor

_SETTINGS = ("max_iter", "respect_context_window", "use_better_compaction", "log_error_after")
"""The executor settings a run carries over from its launcher."""
_MESSAGE_KEYS = ("role", "content", "tool_call_id", "name", "tool_calls")

_launching: ContextVar[DurableAgentExecutor | None] = ContextVar("crew_durable_launching", default=None)


@contextmanager
def launched_by(executor: DurableAgentExecutor) -> Iterator[None]:
    """The run started in this block is launched by ``executor``: it runs on that executor's objects."""
    token = _launching.set(executor)
    try:
        yield
    finally:
        _launching.reset(token)


class RunExecutor(AgentExecutor):
    """crewAI's ``AgentExecutor`` as it runs inside a durable agent run."""

    # A crewAI Flow builds its definition from the class's own __dict__; without
    # this a subclass would have no start method and end with no answer.
    _flow_definition: ClassVar[FlowDefinition | None] = AgentExecutor.flow_definition()

    _step_ranges: dict[int, DBOSContext | None] = PrivateAttr(default_factory=dict)

    # -- oversized tool results: files whose names a replay gives again ------

    def _prepare_tool_result_for_context(self, execution_result: dict[str, Any]) -> str:
        """crewAI's deferral of an oversized tool result to a file, under a name that follows from it.

        crewAI names the file at random and the model reads it back by name
        with a tool; a recovered run replays the recorded read, so the name
        must be the one the original run gave.
        """
        use_stable_artifact_names(self)
        return super()._prepare_tool_result_for_context(execution_result)

    # -- parallel native tool calls: a fixed range of step ids per call ------

    def _should_parallelize_native_tool_calls(self, tool_calls: list[Any]) -> bool:
        """Reserve step ids for a parallel batch, in the model's order of the calls.

        crewAI runs the calls of one response in a thread pool, so their steps
        would otherwise be numbered in whatever order the threads reach them.
        """
        parallel = super()._should_parallelize_native_tool_calls(tool_calls)
        if parallel:
            ranges = reserve_step_ranges(len(tool_calls))
            if ranges is not None:
                self._step_ranges.update(zip(map(id, tool_calls), ranges, strict=True))
        return parallel

    def _execute_single_native_tool_call(self, tool_call: Any) -> dict[str, Any]:
        with running_in(self._step_ranges.pop(id(tool_call), None)):
            return super()._execute_single_native_tool_call(tool_call)

    # -- planning: a fixed range of step ids per todo run in parallel ---------

    async def execute_todos_parallel(self) -> Literal["parallel_todos_complete"]:
        """Reserve step ids for the plan's ready todos, in plan order.

        crewAI runs each ready todo in a thread of its own; without a range
        each, their completions and tools would take step ids in whatever
        order the threads reach them, and a replay would hand one todo the
        recorded completions of another.
        """
        ready = self.state.todos.get_ready_todos()
        ranges = reserve_step_ranges(len(ready))
        if ranges is not None:
            self._step_ranges.update(zip(map(id, ready), ranges, strict=True))
        return await super().execute_todos_parallel()

    def _build_context_for_todo(self, todo: TodoItem) -> StepExecutionContext:
        # crewAI calls this in the asyncio task that then starts the todo's thread.
        scoped = self._step_ranges.pop(id(todo), None)
        if scoped is not None:
            switch_to(scoped)
        return super()._build_context_for_todo(todo)

    # -- memory: one step per save, not a background write --------------------

    def _save_to_memory(self, output: AgentFinish) -> None:
        """Save the run's result to crewAI memory as one step.

        crewAI writes memory from a background pool; inside a durable run the
        save runs in a step that waits for the write, so a finished run's save
        is never repeated and a recovered run does not lose it. (A save in
        flight when the process dies runs again: at least once.)
        """
        memory = self._memory()
        if memory is None or not in_workflow():
            return super()._save_to_memory(output)
        name = f"{agent_name(self)}.memory.save"
        DBOS.run_step(StepConfig().options(name), self._save_and_wait, memory, output)

    def _memory(self) -> Any:
        """The memory crewAI would save this run's result to, if any."""
        memory = getattr(self.agent, "memory", None) or getattr(self.crew, "_memory", None)
        if memory is None or self.task is None or getattr(memory, "read_only", False):
            return None
        return memory

    def _save_and_wait(self, memory: Any, output: AgentFinish) -> str:
        super()._save_to_memory(output)
        memory.drain_writes()
        return "saved"

    # -- human feedback: a durable question -------------------------------

    def _handle_human_feedback(self, formatted_answer: AgentFinish) -> AgentFinish:
        """Ask for feedback the durable way inside a run (see ``_human_input``); crewAI's outside."""
        if not in_workflow():
            return super()._handle_human_feedback(formatted_answer)
        token = set_provider(provider_for_run())
        try:
            return super()._handle_human_feedback(formatted_answer)
        finally:
            reset_provider(token)

    async def _ahandle_human_feedback(self, formatted_answer: AgentFinish) -> AgentFinish:
        if not in_workflow():
            return await super()._ahandle_human_feedback(formatted_answer)
        token = set_provider(provider_for_run())
        try:
            return await super()._ahandle_human_feedback(formatted_answer)
        finally:
            reset_provider(token)


@DBOS.workflow(name="crew_durable.agent_run", serialization_type=WorkflowSerializationFormat.PORTABLE)
def agent_run(spec: dict[str, Any]) -> dict[str, Any]:
    """One agent run (one ``execute_task``), as a workflow."""
    with _run_stream(spec), _executor_for(spec) as executor, _usage.collecting_run_usage() as usage:
        result = cast(dict[str, Any], executor.invoke(spec["inputs"]))
        return _finished(spec, executor, result, usage)


@DBOS.workflow(name="crew_durable.agent_run_async", serialization_type=WorkflowSerializationFormat.PORTABLE)
async def agent_run_async(spec: dict[str, Any]) -> dict[str, Any]:
    """One agent run started from async code (``aexecute_task``), as a workflow."""
    with _run_stream(spec), _executor_for(spec) as executor, _usage.collecting_run_usage() as usage:
        result = await executor.invoke_async(spec["inputs"])
        return _finished(spec, executor, result, usage)


@contextmanager
def _run_stream(spec: dict[str, Any]) -> Iterator[None]:
    """Send this run's events (task, tools, completions) to its root run's stream."""
    task = spec["task"]
    label = task_label(task) if task is not None else None
    stream = _stream.stream_for(spec.get("stream"), spec["agent"], label)
    with _stream.writing_to(stream), _tool_events.observed():
        _stream.emit("task_started", text=task["description"] if task else None)
        yield


def _finished(
    spec: dict[str, Any], executor: AgentExecutor, result: dict[str, Any], usage: _usage.RunUsage
) -> dict[str, Any]:
    outcome = _outcome(spec, executor, result, usage)
    output = outcome["output"]
    text = output["value"] if output["kind"] == "text" else json.dumps(output["value"], ensure_ascii=False)
    _stream.emit("task_finished", text=text, data={"usage": usage.as_json()["total"]})
    return outcome


@contextmanager
def _executor_for(spec: dict[str, Any]) -> Iterator[RunExecutor]:
    """The executor this run uses, configured from a live caller, or rebuilt for recovery.

    It belongs to this run alone: concurrent runs of one agent (a recovered
    crew beside its recovered task, async tasks) never share one.
    """
    live = _launching.get()
    if live is not None and agent_name(live) == spec["agent"]:
        _launching.set(None)
        configuration = live._fork()
    else:
        agent = _registry.agent(spec["agent"])
        crew = _registry.crew(spec["crew"]).crew if spec["crew"] else None
        configuration = Configuration(
            agent,
            task=_task_from_json(spec["task"], agent),
            crew=crew,
            raw_tools=_tool_sources.resolve(spec["tools"], agent, crew),
            prompt=_prompt_from_json(spec["prompt"]),
            stop_words=spec["stop_words"],
            response_model=import_model(spec["response_model"]) if spec["response_model"] else None,
            settings=spec["settings"],
            callbacks=[TokenCalcHandler(token_process(agent))],
        )
    executor = configuration.apply_to(_idle_executors.take(spec["agent"]))
    try:
        yield executor
    finally:
        _idle_executors.give(spec["agent"], executor)


class Configuration:
    """What an executor needs for one run, ready to put on a new or reused executor."""

    def __init__(self, agent: Any, *, raw_tools: list[Any], settings: dict[str, Any], **fields: Any) -> None:
        raw_tools = durable_memory_tools(agent.agent_name, raw_tools)
        tools = parse_tools(raw_tools)
        limiter = rpm_controller(agent)
        self.agent = agent
        self.use_better_compaction = settings["use_better_compaction"]
        self.fields = {
            **fields,
            "agent": agent,
            "tools": tools,
            "original_tools": raw_tools,
            "tools_names": get_tool_names(tools),
            "tools_description": render_text_description_and_args(tools),
            "tools_handler": agent.tools_handler,
            "step_callback": agent.step_callback,
            "request_within_rpm_limit": limiter.check_or_wait if limiter else None,
            **{name: value for name, value in settings.items() if name != "use_better_compaction"},
        }

    def apply_to(self, executor: RunExecutor | None) -> RunExecutor:
        if executor is None:
            llms = {
                "llm": fresh(self.agent.llm),
                "function_calling_llm": fresh(self.agent.function_calling_llm),
            }
            executor = RunExecutor(**self.fields, **llms)
        else:
            for name, value in self.fields.items():
                setattr(executor, name, value)
            executor.llm = reset(executor.llm, self.agent.llm)
            executor.function_calling_llm = reset(
                executor.function_calling_llm, self.agent.function_calling_llm
            )
            executor._step_ranges.clear()
        executor.use_better_compaction = self.use_better_compaction
        return executor


class _IdleExecutors:
    """Executors of finished runs, kept per agent name for the next run.

    crewAI builds a pydantic state model class for every Flow it
    constructs (about 10 ms); like crewAI's own agents, durable runs reuse
    executors, but one per run at a time.
    """

    def __init__(self, keep: int = 4) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._idle: dict[str, list[RunExecutor]] = {}

    def take(self, agent_name: str) -> RunExecutor | None:
        with self._lock:
            idle = self._idle.get(agent_name)
            return idle.pop() if idle else None

    def give(self, agent_name: str, executor: RunExecutor) -> None:
        with self._lock:
            idle = self._idle.setdefault(agent_name, [])
            if len(idle) < self._keep:
                idle.append(executor)


_idle_executors = _IdleExecutors()


def _outcome(
    spec: dict[str, Any], executor: AgentExecutor, result: dict[str, Any], usage: _usage.RunUsage
) -> dict[str, Any]:
    outcome = {
        "output": value_to_json(result["output"]),
        "messages": [
            {key: message[key] for key in _MESSAGE_KEYS if key in message}
            for message in executor.state.messages
        ],
        "usage": usage.as_json(),
        IDENTITY: identity_of(spec),
    }
    dumps(outcome, f"The output of agent {spec['agent']!r}'s run")
    return outcome


def identity_of(spec: dict[str, Any]) -> dict[str, str]:
    task = spec["task"]
    return identity("agent", spec["agent"], task["description"] if task else spec["inputs"].get("input"))


def agent_name(executor: AgentExecutor) -> str:
    name = getattr(executor.agent, "agent_name", None)
    if not isinstance(name, str):
        raise CrewDurableError(
            "DurableAgentExecutor runs the agents of DBOSAgent only: wrap the agent with "
            "DBOSAgent(agent_name=..., orig_agent=agent)."
        )
    return name


def _prompt_from_json(data: dict[str, Any] | None) -> SystemPromptResult | StandardPromptResult | None:
    if data is None:
        return None
    fields = {key: value for key, value in data.items() if key != "system_prompt"}
    return SystemPromptResult(**fields) if data["system_prompt"] else StandardPromptResult(**fields)


def task_label(task: dict[str, Any]) -> str:
    """How events and requests name a task: its name, else the start of its description."""
    name = task.get("name")
    if name:
        return str(name)
    description = " ".join(str(task["description"]).split())
    return description if len(description) <= 80 else description[:77] + "..."


def _task_from_json(data: dict[str, Any] | None, agent: Any) -> Task | None:
    """A stand-in for the run's task, for events and hooks; its output goes nowhere."""
    if data is None:
        return None
    return Task(agent=agent, **data)
