"""Tools whose calls are DBOS steps, and the idempotency key a tool step can hand on.

A tool with a side effect (a payment, an email, a trade) must not run twice
because a run was retried or recovered. A checkpointed call runs once and
replays its recorded result; a call that was in flight when the process
died runs again, and ``idempotency_key()`` gives it the same key both times,
so the service it calls can recognise the repeat.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import traceback
from collections.abc import Iterable, Mapping
from typing import Any

from crewai.tools.base_tool import BaseTool
from crewai.tools.memory_tools import RecallMemoryTool, RememberTool
from dbos import DBOS
from pydantic import Field

from crew_durable._errors import CrewDurableError, NotRecoverableError, RecordedError, unwrap_step_error
from crew_durable._human_input import decide_tool_call
from crew_durable._llm import in_workflow
from crew_durable._serialization import dumps, value_from_json, value_to_json
from crew_durable._step_config import StepConfig

logger = logging.getLogger("crew_durable")

ToolSteps = bool | Iterable[str] | Mapping[str, StepConfig]
"""Which tools of a DBOSAgent are steps: all, those named, or those named with their config."""


class DBOSTool(BaseTool):
    """A crewAI tool whose every call, inside a durable run, is a DBOS step.

    The call's result is recorded as JSON; an exception the tool raises is
    recorded as plain data (class, message) and raised again on replay, so
    crewAI feeds the model the same error text. Retries happen inside the
    step, and only for errors ``StepConfig.should_retry`` calls transient.

    With ``approval``, each call first waits for a person's decision on that
    exact call (``CrewClient.approve`` / ``deny``): approved, it runs once;
    denied, it does not run and the model gets the reason as its result.
    A tool that already is a DBOS step or workflow keeps its own
    durability (``as_step=False``) and only gains the approval.
    """

    wrapped: BaseTool = Field(exclude=True)
    step_name: str = Field(exclude=True)
    step_config: StepConfig = Field(default_factory=StepConfig, exclude=True)
    as_step: bool = Field(default=True, exclude=True)
    approval: bool = Field(default=False, exclude=True)
    agent_name: str | None = Field(default=None, exclude=True)
    approval_timeout: float | None = Field(default=None, exclude=True)

    @classmethod
    def around(
        cls,
        tool: BaseTool,
        step_name: str,
        config: StepConfig | None = None,
        *,
        as_step: bool = True,
        approval: bool = False,
        agent_name: str | None = None,
        approval_timeout: float | None = None,
    ) -> DBOSTool:
        config = config or StepConfig()
        if config.retries_allowed and config.should_retry is None:
            raise ValueError(
                f"Tool step {step_name!r} allows retries but has no should_retry: a tool with "
                "side effects is retried only for errors you mark transient. Pass "
                "StepConfig(retries_allowed=True, should_retry=lambda error: ...)."
            )
        return cls(
            name=tool.name,
            description=tool.description,
            args_schema=tool.args_schema,
            result_schema=tool.result_schema,
            result_as_answer=tool.result_as_answer,
            max_usage_count=tool.max_usage_count,
            cache_function=tool.cache_function,
            tool_failure_policy=tool.tool_failure_policy,
            wrapped=tool,
            step_name=step_name,
            step_config=config,
            as_step=as_step,
            approval=approval,
            agent_name=agent_name,
            approval_timeout=approval_timeout,
        )

    def _run(self, *args: Any, **kwargs: Any) -> Any:
        if not in_workflow():
            return self.wrapped.run(*args, **kwargs)
        if self.approval:
            arguments = _arguments(args, kwargs)
            decision = decide_tool_call(
                self.agent_name or "agent", self.name, arguments, self.approval_timeout
            )
            if not decision.approved:
                return f"A person did not approve this call of {self.name}: {decision.reason}"
        if not self.as_step:
            return self._run_durable_tool(args, kwargs)
        try:
            record = DBOS.run_step(self._options(), self._call, args, kwargs)
        except Exception as error:
            raise unwrap_step_error(error) from None
        return value_from_json(json.loads(record))

    def _run_durable_tool(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call a tool that is a DBOS step or workflow itself; a result DBOS cannot pickle is named."""
        try:
            return self.wrapped.run(*args, **kwargs)
        except Exception as error:
            if not _unpicklable_result(error):
                raise
            refusal = NotRecoverableError(
                f"The tool {self.name!r} is a DBOS step (or workflow) whose result cannot be pickled "
                f"({error}), so DBOS did not record the call: it ran, but a recovered run would run "
                "it again. Return plain data from it (str, numbers, lists, dicts, a pydantic model), "
                "for example str(result); or drop @DBOS.step and select the tool with "
                f"DBOSAgent(tool_steps=[{self.name!r}]), which records as text what JSON cannot hold."
            )
            logger.error("%s", refusal)
            raise refusal from None

    def _call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        try:
            result = self.wrapped.run(*args, **kwargs)
        except Exception as error:
            raise RecordedError.of(error) from None
        try:
            return dumps(value_to_json(result), f"The tool {self.name!r}")
        except NotRecoverableError:
            # crewAI hands the model str(result): a value JSON cannot hold is recorded as that text.
            return dumps(value_to_json(str(result)), f"The tool {self.name!r}")

    def _options(self) -> Any:
        options = self.step_config.options(self.step_name)
        should_retry = options["should_retry"]
        if should_retry is not None:
            options["should_retry"] = lambda error: bool(
                should_retry(getattr(error, "original", None) or error)
            )
        return options


def _unpicklable_result(error: BaseException) -> bool:
    """Whether ``error`` is DBOS failing to pickle a step's result (the step itself returned)."""
    if not isinstance(error, (pickle.PicklingError, TypeError, AttributeError)) or "pickle" not in str(error):
        return False
    frames = traceback.extract_tb(error.__traceback__)
    return any(frame.name == "serialize" and "dbos" in frame.filename for frame in frames)


def guard_durable_tools(tools: list[BaseTool]) -> list[BaseTool]:
    """A run's tools, those that are DBOS steps themselves watched for results DBOS cannot record.

    DBOS pickles a ``@DBOS.step`` tool's result after the call; when that
    fails, nothing is recorded, and crewAI would hand the model the bare
    pickling error. The watched tool says which tool it was and what to do.
    """
    return [
        DBOSTool.around(tool, tool.name, as_step=False)
        if not isinstance(tool, DBOSTool) and is_durable(tool)
        else tool
        for tool in tools
    ]


def _arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """A call's arguments as the JSON a person reviews (what is not JSON shows as text)."""
    named = {**({"args": list(args)} if args else {}), **kwargs}
    return dict(json.loads(json.dumps(named, default=str)))


def is_durable(tool: BaseTool) -> bool:
    """Whether calling ``tool`` already is a DBOS step or workflow."""
    if isinstance(tool, DBOSTool):
        return tool.as_step or is_durable(tool.wrapped)
    candidates = (getattr(tool, "func", None), getattr(type(tool), "_run", None))
    return any(hasattr(candidate, "dbos_function_name") for candidate in candidates)


def make_tools_durable(
    agent_name: str,
    tools: list[BaseTool],
    selection: ToolSteps,
    *,
    approvals: Iterable[str] = (),
    approval_timeout: float | None = None,
    all_known: bool = True,
) -> list[BaseTool]:
    """The agent's tools, the selected ones turned into steps named ``<agent>.tool.<name>``.

    A tool is selected by its name or, for an MCP tool (whose crewAI name
    carries its server's), by the name its server gives it. Tools named in
    ``approvals`` wait for a person's approval before each call, and are
    steps too: an approved call must run once. ``all_known`` says whether
    ``tools`` is every tool the names can refer to: tools that crewAI adds
    at run time (MCP servers, platform apps) are not known yet when the
    agent is built.
    """
    approved = set(approvals)
    configs: Mapping[str, StepConfig | None]
    if selection is True:
        configs = {tool.name: None for tool in tools}
    elif selection is False:
        configs = {}
    elif isinstance(selection, Mapping):
        configs = selection
    else:
        configs = dict.fromkeys(selection)
    known = {name for tool in tools for name in _names(tool)}
    for option, names in (("tool_steps", set(configs)), ("approval_required", approved)):
        unknown = names - known
        if unknown and all_known:
            raise ValueError(
                f"DBOSAgent {agent_name!r}: {option} names tools the agent does not have: "
                f"{sorted(unknown)}. Its tools are {sorted(tool.name for tool in tools)}."
            )
    return [_as_step(agent_name, tool, configs, approved, approval_timeout) for tool in tools]


def _as_step(
    agent_name: str,
    tool: BaseTool,
    configs: Mapping[str, StepConfig | None],
    approvals: set[str],
    approval_timeout: float | None,
) -> BaseTool:
    names = _names(tool)
    selected = [name for name in names if name in configs]
    approval = any(name in approvals for name in names)
    if isinstance(tool, DBOSTool) or not (selected or approval):
        return tool
    durable = is_durable(tool)
    if durable and not approval:
        return tool
    return DBOSTool.around(
        tool,
        f"{agent_name}.tool.{names[-1]}",
        configs.get(selected[0]) if selected else None,
        as_step=not durable,
        approval=approval,
        agent_name=agent_name,
        approval_timeout=approval_timeout,
    )


def _names(tool: BaseTool) -> list[str]:
    """The tool's crewAI name and, for an MCP tool, the (shorter) name its server gives it."""
    original = getattr(tool, "original_tool_name", None)
    return [tool.name, original] if isinstance(original, str) else [tool.name]


def durable_memory_tools(agent_name: str, tools: list[BaseTool]) -> list[BaseTool]:
    """crewAI's memory tools (search, save) as steps: a save must not be written twice.

    The run's ``@DBOS.step`` tools are watched too (see :func:`guard_durable_tools`).
    """
    return guard_durable_tools(
        [
            DBOSTool.around(tool, f"{agent_name}.tool.{tool.name}")
            if isinstance(tool, (RecallMemoryTool, RememberTool))
            else tool
            for tool in tools
        ]
    )


def idempotency_key() -> str:
    """A key for the external call a tool step makes, the same every time the step runs.

    Inside a step (a ``@DBOS.step`` tool, or a tool made a step with
    ``DBOSAgent(tool_steps=...)``) it is the same across the step's retries
    and across crash recovery, and differs between steps and between runs:
    hand it to an API that deduplicates (``Idempotency-Key`` headers) and a
    call repeated because the process died mid-step has no second effect.
    """
    workflow_id, step_id = DBOS.workflow_id, DBOS.step_id
    if workflow_id is None or step_id is None:
        raise CrewDurableError(
            "idempotency_key() is only available inside a tool step of a durable run: call it "
            "from a @DBOS.step tool, or a tool made a step with DBOSAgent(tool_steps=...), "
            "while a DBOSAgent or DBOSCrew runs it."
        )
    key = f"{workflow_id}/{step_id}"
    return key if len(key) <= 200 else hashlib.sha256(key.encode()).hexdigest()
