"""DBOSAgent: a crewAI agent whose task runs are DBOS workflows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from difflib import get_close_matches
from typing import Any

from crewai import Agent, Task
from crewai.agent.planning_config import PlanningConfig
from crewai.agents.agent_builder.base_agent import PlatformAppOrAction
from crewai.llms.base_llm import BaseLLM
from crewai.mcp.config import MCPServerConfig
from crewai.tools.base_tool import BaseTool
from crewai.utilities.agent_utils import is_inside_event_loop
from crewai.utilities.converter import Converter
from crewai.utilities.llm_utils import create_llm
from dbos import DBOS, SetWorkflowID
from pydantic import BaseModel, Field, PrivateAttr, model_validator
from typing_extensions import Self

from crew_durable import _agent_kickoff, _registry
from crew_durable._converter import DurableConverter
from crew_durable._crewai_internals import reset_times_executed
from crew_durable._dbos_internals import consumed_workflow_id, dbos_launched
from crew_durable._errors import CrewDurableError, RecordedError
from crew_durable._executor import DurableAgentExecutor, cancelled_on_timeout
from crew_durable._llm import DBOSLLM, fresh, in_workflow
from crew_durable._step_config import StepConfig
from crew_durable._tool_steps import ToolSteps, make_tools_durable

# Fields of the original agent that describe a run in progress, not the agent.
_RUNTIME_FIELDS = frozenset(
    {"id", "agent_executor", "executor_class", "crew", "tools_handler", "cache_handler"}
)

_copying: ContextVar[DBOSAgent | None] = ContextVar("crew_durable_copying", default=None)
_in_task: ContextVar[frozenset[int]] = ContextVar("crew_durable_in_task", default=frozenset())


class DBOSAgent(Agent):
    """A durable crewAI agent: each ``execute_task`` / ``aexecute_task`` is a DBOS workflow.

    Build it from an existing agent; it goes anywhere an ``Agent`` goes
    (``Task(agent=...)``, ``Crew(agents=[...])``). Every completion of its LLM,
    function-calling LLM and planning LLM is a step; tools are steps when they
    are ``@DBOS.step`` functions, or when ``tool_steps`` selects them: ``True``
    for every tool, a list of tool names, or a mapping of tool names to
    their ``StepConfig`` (the tools crewAI takes from the agent's MCP servers
    and platform apps at run time included). ``agent_name`` names the workflows and steps in the
    database and is how a process recovering a run finds this agent, so it
    must be unique and stable, and the agent must be defined before
    ``DBOS.launch()``.
    """

    agent_name: str = Field(description="Unique, stable name of this durable agent.")
    llm_step_config: StepConfig | None = Field(default=None, description="Retries of LLM completions.")
    function_calling_llm_step_config: StepConfig | None = Field(
        default=None, description="Retries of function-calling LLM completions."
    )
    approval_required: list[str] = Field(
        default_factory=list, description="Tools whose every call waits for a person's approval."
    )
    input_timeout: float | None = Field(
        default=None,
        description="Seconds a run waits for a person (feedback, approval) before going on without.",
    )

    _tool_steps: ToolSteps = PrivateAttr(default=False)
    _runtime_tools: dict[str, str] = PrivateAttr(default_factory=dict)
    """Names of the tools crewAI added at run time, and where they came from (mcp, platform)."""

    def __init__(
        self,
        *,
        agent_name: str,
        orig_agent: Agent | None = None,
        llm_step_config: StepConfig | None = None,
        function_calling_llm_step_config: StepConfig | None = None,
        tool_steps: ToolSteps = False,
        approval_required: Iterable[str] = (),
        input_timeout: float | None = None,
        **fields: Any,
    ) -> None:
        _registry.check_name("DBOSAgent", agent_name)
        _refuse_unknown(fields)
        approvals = _tool_names("approval_required", approval_required)
        if input_timeout is not None and not input_timeout > 0:
            raise ValueError(
                f"DBOSAgent(input_timeout=...) is a number of seconds above 0, got {input_timeout!r}."
            )
        if orig_agent is not None:
            if not isinstance(orig_agent, Agent):
                raise TypeError(
                    f"DBOSAgent(orig_agent=...) takes a crewai.Agent, got {type(orig_agent).__name__}."
                )
            fields = {**_fields_of(orig_agent), **fields}
        fields.pop("executor_class", None)
        source = _copying.get()
        if source is not None:  # Agent.copy passes these LLMs as dumps, and drops MCP servers and apps
            fields["function_calling_llm"] = source.function_calling_llm
            fields["planning_config"] = source.planning_config
            fields["mcps"], fields["apps"] = source.mcps, source.apps
            tool_steps = source._tool_steps
            approvals, input_timeout = source.approval_required, source.input_timeout
        all_known = not (fields.get("mcps") or fields.get("apps"))
        fields["tools"] = make_tools_durable(
            agent_name,
            list(fields.get("tools") or []),
            tool_steps,
            approvals=approvals,
            approval_timeout=input_timeout,
            all_known=all_known,
        )
        super().__init__(
            agent_name=agent_name,
            llm_step_config=llm_step_config,
            function_calling_llm_step_config=function_calling_llm_step_config,
            approval_required=approvals,
            input_timeout=input_timeout,
            executor_class=DurableAgentExecutor,
            **fields,
        )
        self._tool_steps = tool_steps
        if source is None:
            _registry.register_agent(agent_name, self)

    @model_validator(mode="after")
    def _make_llms_durable(self) -> Self:
        """Wrap the LLMs so each completion is a step (idempotent: validators can re-run)."""
        if isinstance(self.llm, BaseLLM) and not _is_wrapper_of(self.llm, self.agent_name, "llm"):
            self.llm = DBOSLLM.around(self.llm, f"{self.agent_name}.llm", self.llm_step_config)
        fc_llm = self.function_calling_llm
        if isinstance(fc_llm, BaseLLM) and not _is_wrapper_of(
            fc_llm, self.agent_name, "function_calling_llm"
        ):
            self.function_calling_llm = DBOSLLM.around(
                fc_llm,
                f"{self.agent_name}.function_calling_llm",
                self.function_calling_llm_step_config,
                role="function_calling_llm",
            )
        plan = _with_durable_llm(self.planning_config, self.agent_name, self.llm_step_config)
        if plan is not self.planning_config:
            self.planning_config = plan
        return self

    @model_validator(mode="after")
    def _refuse_wall_clock_planning(self) -> Self:
        """A plan step that stops on wall-clock time would not stop at the same point in a replay."""
        if self.planning_config is not None and self.planning_config.step_timeout is not None:
            raise CrewDurableError(
                f"DBOSAgent {self.agent_name!r}: planning_config.step_timeout ends a plan step after "
                "a number of seconds, and a recovered run replays recorded steps far faster than "
                "they first ran, so it would carry on where the original stopped. Bound plan steps "
                "with planning_config.max_step_iterations, or the whole task with max_execution_time "
                "(a durable run past it is cancelled)."
            )
        return self

    def execute_task(
        self, task: Task, context: str | None = None, tools: list[BaseTool] | None = None
    ) -> Any:
        with _one_task(self):
            return super().execute_task(task, context, tools)

    async def aexecute_task(
        self, task: Task, context: str | None = None, tools: list[BaseTool] | None = None
    ) -> Any:
        with _one_task(self):
            return await super().aexecute_task(task, context, tools)

    def kickoff(
        self,
        messages: str | list[Any],
        response_format: type[Any] | None = None,
        input_files: dict[str, Any] | None = None,
        from_checkpoint: Any = None,
    ) -> Any:
        """crewAI's ``Agent.kickoff``, as one DBOS workflow (named by an enclosing ``SetWorkflowID``).

        A second call under the same id returns the recorded output and
        requests nothing; a kickoff killed mid-run is recovered by the next
        ``DBOS.launch()``. Inside another durable run, or with
        ``input_files`` / ``from_checkpoint``, crewAI's own kickoff runs:
        its completions are steps of the enclosing run, if any.
        """
        if not _kickoff_as_workflow(input_files, from_checkpoint):
            return super().kickoff(messages, response_format, input_files, from_checkpoint)
        if is_inside_event_loop():
            return self.kickoff_async(messages, response_format)
        with _agent_kickoff.launching(self.agent_name, messages, response_format) as launch:
            launch.record = _agent_kickoff.agent_kickoff(launch.spec, launch.run)
        return launch.output()

    async def kickoff_async(
        self,
        messages: str | list[Any],
        response_format: type[Any] | None = None,
        input_files: dict[str, Any] | None = None,
        from_checkpoint: Any = None,
    ) -> Any:
        """``kickoff`` from async code, natively async, as one DBOS workflow."""
        if not _kickoff_as_workflow(input_files, from_checkpoint):
            return await super().kickoff_async(messages, response_format, input_files, from_checkpoint)
        with _agent_kickoff.launching(self.agent_name, messages, response_format) as launch:
            launch.record = await _agent_kickoff.agent_kickoff_async(launch.spec, launch.run)
        return launch.output()

    async def akickoff(
        self,
        messages: str | list[Any],
        response_format: type[Any] | None = None,
        input_files: dict[str, Any] | None = None,
        from_checkpoint: Any = None,
    ) -> Any:
        return await self.kickoff_async(messages, response_format, input_files, from_checkpoint)

    def _execute_with_timeout(self, task_prompt: str, task: Task, timeout: int) -> Any:
        with cancelled_on_timeout(timeout):
            return super()._execute_with_timeout(task_prompt, task, timeout)

    async def _aexecute_with_timeout(self, task_prompt: str, task: Task, timeout: int) -> Any:
        with cancelled_on_timeout(timeout):
            return await super()._aexecute_with_timeout(task_prompt, task, timeout)

    def get_mcp_tools(self, mcps: list[str | MCPServerConfig]) -> list[BaseTool]:
        """The tools of the agent's MCP servers, those ``tool_steps`` selects made steps."""
        return self._runtime(super().get_mcp_tools(mcps), "mcp")

    def get_platform_tools(self, apps: list[PlatformAppOrAction]) -> list[BaseTool]:
        """The tools of the agent's platform apps, those ``tool_steps`` selects made steps."""
        return self._runtime(super().get_platform_tools(apps), "platform")

    def _runtime(self, tools: list[BaseTool], source: str) -> list[BaseTool]:
        self._runtime_tools.update(dict.fromkeys((tool.name for tool in tools), source))
        return make_tools_durable(
            self.agent_name,
            tools,
            self._tool_steps,
            approvals=self.approval_required,
            approval_timeout=self.input_timeout,
            all_known=False,
        )

    def get_output_converter(  # type: ignore[override]
        self, llm: BaseLLM, text: str, model: type[BaseModel], instructions: str
    ) -> Converter:
        """crewAI's converter for ``output_json``/``output_pydantic``, its instructor call a step."""
        return DurableConverter(
            llm=llm,
            text=text,
            model=model,
            instructions=instructions,
            step_name=f"{self.agent_name}.output_json",
        )

    def _retrieve_memory_context(self, task: Task, task_prompt: str) -> str:
        """Recall memories as one step: a replayed run sees what the original recalled."""
        if not self._is_any_available_memory() or not in_workflow():
            return super()._retrieve_memory_context(task, task_prompt)
        options = StepConfig().options(f"{self.agent_name}.memory.recall")
        return str(DBOS.run_step(options, super()._retrieve_memory_context, task, task_prompt))

    def _handle_execution_error(
        self, e: Exception, task: Task, context: str | None, tools: list[BaseTool] | None
    ) -> Any:
        """crewAI retries a failed task; each attempt gets an id derived from the first's.

        A run that failed because it cannot be recovered correctly (a record
        it cannot read, a recorded run that is another's, code that is not
        defined here) is not retried: a retry would be a fresh run that pays
        again for what the failed one had done.
        """
        _refuse_to_retry(e)
        with _retry_workflow_id():
            return super()._handle_execution_error(e, task, context, tools)

    async def _handle_execution_error_async(
        self, e: Exception, task: Task, context: str | None, tools: list[BaseTool] | None
    ) -> Any:
        _refuse_to_retry(e)
        with _retry_workflow_id():
            return await super()._handle_execution_error_async(e, task, context, tools)

    def copy(self) -> Self:  # type: ignore[override]
        """A copy (``Crew.copy``, ``kickoff_for_each``) that shares this agent's name.

        A copy is a view of the same durable agent: its runs are recorded
        under the same name, and a recovering process resumes them with the
        registered agent. It is not registered itself, and its LLM wrappers
        count usage from zero.
        """
        token = _copying.set(self)
        try:
            copied = super().copy()
        finally:
            _copying.reset(token)
        copied.llm = fresh(copied.llm)
        copied.function_calling_llm = fresh(copied.function_calling_llm)
        return copied


@contextmanager
def _one_task(agent: DBOSAgent) -> Iterator[None]:
    """Count crewAI's retries per task, not over the agent's lifetime.

    crewAI never resets an agent's failure count, so how often a task is
    retried would depend on what failed earlier in the process, and a
    process replaying the task could decide differently from the original.
    """
    running = _in_task.get()
    if id(agent) in running:  # crewAI retrying this agent's task
        yield
        return
    reset_times_executed(agent)
    token = _in_task.set(running | {id(agent)})
    try:
        yield
    finally:
        _in_task.reset(token)


def _refuse_to_retry(error: Exception) -> None:
    """Raise ``error`` if it says the run cannot be recovered correctly (a crew_durable error).

    Replayed from a failed workflow, such an error is a ``RecordedError``
    naming the class (with or without its module).
    """
    if isinstance(error, CrewDurableError):
        raise error
    if isinstance(error, RecordedError):
        module, _, name = error.error_type.rpartition(".")
        if module in ("", CrewDurableError.__module__) and name in _crew_durable_errors():
            raise error


def _crew_durable_errors() -> set[str]:
    found, pending = set(), [CrewDurableError]
    while pending:
        cls = pending.pop()
        found.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return found


@contextmanager
def _retry_workflow_id() -> Iterator[None]:
    """Name a retry's workflow after the attempt before it.

    ``SetWorkflowID`` names only the first workflow started in its block, so
    crewAI's automatic retries of a failed task would otherwise get random
    ids, and calling again with the same id would pay for them again. Inside
    a workflow (a crew), DBOS already derives child ids deterministically.
    """
    previous = consumed_workflow_id()
    if previous is None or DBOS.workflow_id is not None:
        yield
        return
    base, _, number = previous.rpartition("-retry-")
    retry_id = f"{base}-retry-{int(number) + 1}" if base and number.isdigit() else f"{previous}-retry-1"
    with SetWorkflowID(retry_id):
        yield


def _kickoff_as_workflow(input_files: Any, from_checkpoint: Any) -> bool:
    """Whether a kickoff is a workflow of its own (not inside a run; nothing crewAI restores)."""
    return not (in_workflow() or input_files or from_checkpoint is not None or not dbos_launched())


def _refuse_unknown(fields: dict[str, Any]) -> None:
    """crewAI ignores keywords an Agent does not have; a misspelt durable option must not pass silently."""
    known = set(DBOSAgent.model_fields) | {"tool_steps", "orig_agent"}
    unknown = sorted(set(fields) - known)
    if unknown:
        hints = [
            f"{name!r} (did you mean {close[0]!r}?)"
            if (close := get_close_matches(name, known, n=1))
            else repr(name)
            for name in unknown
        ]
        raise TypeError(f"DBOSAgent got unknown keyword arguments: {', '.join(hints)}.")


def _tool_names(option: str, names: Iterable[str]) -> list[str]:
    if isinstance(names, str) or not all(isinstance(name, str) for name in names):
        raise TypeError(f"DBOSAgent({option}=...) takes a list of tool names, got {names!r}.")
    return list(names)


def _fields_of(agent: Agent) -> dict[str, Any]:
    """The fields the user set on ``agent``, with the objects they set (not copies).

    The LLMs and tools are always taken as they are on the agent, so the
    durable agent talks to the very same LLM objects and tools.
    """
    names = (agent.model_fields_set | {"llm", "function_calling_llm", "tools"}) - _RUNTIME_FIELDS
    return {name: getattr(agent, name) for name in names}


def _with_durable_llm(
    plan: PlanningConfig | None, agent_name: str, config: StepConfig | None
) -> PlanningConfig | None:
    """The planning config, its own planning LLM (if it names one) wrapped so each completion is a step."""
    llm = create_llm(plan.llm) if plan is not None and plan.llm is not None else None
    if plan is None or llm is None or _is_wrapper_of(llm, agent_name, "planning_llm"):
        return plan
    durable = DBOSLLM.around(llm, f"{agent_name}.planning_llm", config, role="planning_llm")
    return plan.model_copy(update={"llm": durable})


def _is_wrapper_of(llm: Any, agent_name: str, role: str) -> bool:
    return isinstance(llm, DBOSLLM) and llm.step_name == f"{agent_name}.{role}"
