"""DBOSCrew: a crewAI crew whose kickoff is one DBOS workflow.

Each kickoff runs, inside the ``crew_durable.crew_kickoff`` workflow, a copy
of the crew made for that run; every task execution in it is an agent run,
so a child workflow whose id DBOS derives from the kickoff's. A recovered
kickoff replays crewAI's own orchestration: finished tasks return their
recorded outputs (which feed the next tasks' context) and the interrupted
task resumes, inside, at its first unfinished step.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from crewai import Agent, Crew, Process, Task
from crewai.agents.agent_builder.base_agent import BaseAgent
from crewai.crews.crew_output import CrewOutput
from crewai.utilities.i18n import get_i18n
from crewai.utilities.llm_utils import create_llm
from crewai.utilities.planning_handler import CrewPlanner
from dbos import DBOS, WorkflowHandle, WorkflowSerializationFormat, WorkflowStatus

from crew_durable import _registry, _usage
from crew_durable._agent import DBOSAgent
from crew_durable._dbos_internals import reserve_step_ranges, running_in
from crew_durable._errors import CrewDurableError, InvalidNameError, from_workflow_error
from crew_durable._llm import DBOSLLM
from crew_durable._serialization import dumps, value_from_json, value_to_json

# Fields of the original crew that are rebuilt rather than carried over.
_REBUILT_FIELDS = frozenset({"id", "agents", "tasks", "manager_agent", "manager_llm"})


class DBOSCrew:
    """A durable crewAI crew: each kickoff is a DBOS workflow, each task a child workflow.

    Plain ``Agent``s of the crew are wrapped as ``DBOSAgent``s named
    ``"<crew_name>.<role>"``; agents already wrapped keep their names. A
    hierarchical crew's manager is a ``DBOSAgent`` named
    ``"<crew_name>.manager"``. Like agents, crews are defined at module level,
    before ``DBOS.launch()``, under a unique, stable ``crew_name``.
    """

    def __init__(self, *, crew_name: str, orig_crew: Crew) -> None:
        _registry.check_name("DBOSCrew", crew_name)
        _registry.check_crew_name_free(crew_name)
        if not isinstance(orig_crew, Crew):
            raise TypeError(f"DBOSCrew(orig_crew=...) takes a crewai.Crew, got {type(orig_crew).__name__}.")
        if orig_crew.stream:
            raise CrewDurableError(
                f"Crew {crew_name!r} streams (stream=True); a durable kickoff returns the recorded "
                "CrewOutput instead. Build the crew with stream=False."
            )
        self.crew_name = crew_name
        self.crew = _durable_crew(crew_name, orig_crew)
        self.planning_llm = _durable_planning_llm(crew_name, orig_crew) if orig_crew.planning else None
        self.usage_metrics = _usage.as_metrics({})
        _registry.register_crew(crew_name, self)

    def kickoff(self, inputs: dict[str, Any] | None = None) -> CrewOutput:
        """Run the crew as a workflow (named by an enclosing ``SetWorkflowID``)."""
        return self._adopt(lambda: _crew_kickoff(self.crew_name, self._checked(inputs)))

    async def kickoff_async(self, inputs: dict[str, Any] | None = None) -> CrewOutput:
        """``kickoff`` from async code; like crewAI's, it runs the crew in a worker thread."""
        return await asyncio.to_thread(self.kickoff, inputs)

    akickoff = kickoff_async

    def kickoff_for_each(self, inputs: list[dict[str, Any]]) -> list[CrewOutput]:
        """One workflow whose children are the kickoffs, one per input, in order."""
        checked = [self._checked(each) for each in inputs]
        outputs = self._adopt_many(lambda: _crew_kickoff_for_each(self.crew_name, checked))
        self.usage_metrics = _usage.as_metrics(_sum(o.token_usage.model_dump() for o in outputs))
        return outputs

    def start(self, inputs: dict[str, Any] | None = None) -> WorkflowHandle[CrewOutput]:
        """Start the kickoff in the background; the handle's result is the ``CrewOutput``."""
        handle = DBOS.start_workflow(_crew_kickoff, self.crew_name, self._checked(inputs))
        return CrewRunHandle(handle, self)

    def _checked(self, inputs: dict[str, Any] | None) -> dict[str, Any]:
        inputs = dict(inputs or {})
        dumps(inputs, f"The kickoff inputs of crew {self.crew_name!r}")
        return inputs

    def _adopt(self, run: Callable[[], dict[str, Any]]) -> CrewOutput:
        try:
            output = crew_output_from_json(run())
        except Exception as error:
            raise from_workflow_error(error) from None
        self.usage_metrics = output.token_usage
        return output

    def _adopt_many(self, run: Callable[[], list[dict[str, Any]]]) -> list[CrewOutput]:
        try:
            return [crew_output_from_json(each) for each in run()]
        except Exception as error:
            raise from_workflow_error(error) from None

    def __repr__(self) -> str:
        return f"DBOSCrew(crew_name={self.crew_name!r}, crew={self.crew!r})"


class CrewRunHandle:
    """A ``WorkflowHandle`` of a crew kickoff whose result is a ``CrewOutput``."""

    def __init__(self, handle: WorkflowHandle[dict[str, Any]], crew: DBOSCrew) -> None:
        self._handle = handle
        self._crew = crew
        self.workflow_id = handle.get_workflow_id()
        self.shard_key = handle.shard_key

    def get_workflow_id(self) -> str:
        return self.workflow_id

    def get_result(self, *, polling_interval_sec: float = 1.0) -> CrewOutput:
        return self._crew._adopt(lambda: self._handle.get_result(polling_interval_sec=polling_interval_sec))

    def get_status(self) -> WorkflowStatus:
        return self._handle.get_status()


# -- the workflows --------------------------------------------------------


@DBOS.workflow(name="crew_durable.crew_kickoff", serialization_type=WorkflowSerializationFormat.PORTABLE)
def _crew_kickoff(crew_name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """One kickoff of a named crew, on a copy of the crew made for this run."""
    crew = _copy_for_run(_registry.crew(crew_name))
    _order_async_tasks(crew)
    with _running(crew_name), _usage.collecting_run_usage() as usage:
        output = crew.kickoff(inputs=inputs)
    assert isinstance(output, CrewOutput)
    output.token_usage = _usage.as_metrics(usage.total)
    return crew_output_to_json(output)


@DBOS.workflow(
    name="crew_durable.crew_kickoff_for_each", serialization_type=WorkflowSerializationFormat.PORTABLE
)
def _crew_kickoff_for_each(crew_name: str, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [_crew_kickoff(crew_name, each) for each in inputs]


def _copy_for_run(durable: DBOSCrew) -> Crew:
    crew = durable.crew.copy()
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


# -- building the durable crew --------------------------------------------


def _durable_crew(crew_name: str, orig: Crew) -> Crew:
    """The crew ``orig`` with durable agents, rebuilt so crewAI's validators wire them."""
    agents = _durable_agents(crew_name, orig.agents)
    task_mapping: dict[str, Task] = {}
    tasks = []
    for task in orig.tasks:
        copied = task.copy(agents, task_mapping)
        task_mapping[task.key] = copied
        tasks.append(copied)
    for copied, task in zip(tasks, orig.tasks, strict=True):
        if isinstance(task.context, list):
            copied.context = [task_mapping[context.key] for context in task.context]
    fields = {name: getattr(orig, name) for name in orig.model_fields_set - _REBUILT_FIELDS}
    if getattr(orig, "_memory", None) is not None:
        fields["memory"] = orig._memory
    manager = _durable_manager(crew_name, orig, agents)
    return Crew(**fields, agents=agents, tasks=tasks, manager_agent=manager)


def _durable_agents(crew_name: str, agents: list[BaseAgent]) -> list[BaseAgent]:
    plain = [agent for agent in agents if not isinstance(agent, DBOSAgent)]
    names = [f"{crew_name}.{_slug(agent.role)}" for agent in plain]
    for name in names:
        if names.count(name) > 1:
            raise InvalidNameError(
                f"Crew {crew_name!r} has several agents whose role gives the name {name!r}. "
                "Wrap them yourself with DBOSAgent(agent_name=..., orig_agent=...) to give "
                "each a name of its own."
            )
    durable = iter(
        DBOSAgent(agent_name=name, orig_agent=_as_agent(agent))
        for name, agent in zip(names, plain, strict=True)
    )
    return [agent if isinstance(agent, DBOSAgent) else next(durable) for agent in agents]


def _durable_manager(crew_name: str, orig: Crew, agents: list[BaseAgent]) -> DBOSAgent | None:
    """The hierarchical manager as a durable agent: crewAI would build a plain one at kickoff."""
    if orig.process != Process.hierarchical:
        return None
    if isinstance(orig.manager_agent, DBOSAgent):
        return orig.manager_agent
    name = f"{crew_name}.manager"
    if orig.manager_agent is not None:
        return DBOSAgent(agent_name=name, orig_agent=_as_agent(orig.manager_agent))
    i18n = get_i18n(prompt_file=orig.prompt_file)
    manager = Agent(
        role=i18n.retrieve("hierarchical_manager_agent", "role"),
        goal=i18n.retrieve("hierarchical_manager_agent", "goal"),
        backstory=i18n.retrieve("hierarchical_manager_agent", "backstory"),
        allow_delegation=True,
        llm=create_llm(orig.manager_llm),
        verbose=orig.verbose,
    )
    # Delegation tools are added per task by crewAI, from the run's own agents.
    return DBOSAgent(agent_name=name, orig_agent=manager)


def _durable_planning_llm(crew_name: str, orig: Crew) -> DBOSLLM:
    """The LLM of crewAI's crew planner (``planning=True``), each completion a step.

    crewAI plans a crew's tasks at the start of every kickoff with an agent
    of its own; through this LLM a recovered kickoff gets the recorded plan
    back, so its tasks read the same descriptions without paying for a new plan.
    """
    planning_llm = create_llm(CrewPlanner(tasks=[], planning_agent_llm=orig.planning_llm).planning_agent_llm)
    assert planning_llm is not None
    return DBOSLLM.around(planning_llm, f"{crew_name}.planning_llm", None, role="planning_llm")


def _as_agent(agent: BaseAgent) -> Agent:
    if not isinstance(agent, Agent):
        raise TypeError(
            f"DBOSCrew can make crewai.Agent agents durable, not {type(agent).__name__} "
            f"(role {agent.role!r})."
        )
    return agent


def _slug(role: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", role).strip("_").lower() or "agent"


def _sum(usages: Iterator[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for usage in usages:
        for key, value in usage.items():
            total[key] = total.get(key, 0) + value
    return total


# -- outputs as JSON --------------------------------------------------------


def crew_output_to_json(output: CrewOutput) -> dict[str, Any]:
    return {
        "raw": output.raw,
        "pydantic": value_to_json(output.pydantic) if output.pydantic is not None else None,
        "json_dict": output.json_dict,
        "tasks_output": [_task_output_to_json(task_output) for task_output in output.tasks_output],
        "token_usage": output.token_usage.model_dump(),
    }


def crew_output_from_json(data: dict[str, Any]) -> CrewOutput:
    return CrewOutput(
        raw=data["raw"],
        pydantic=value_from_json(data["pydantic"]) if data["pydantic"] is not None else None,
        json_dict=data["json_dict"],
        tasks_output=[_task_output_from_json(each) for each in data["tasks_output"]],
        token_usage=_usage.as_metrics(data["token_usage"]),
    )


def _task_output_to_json(task_output: Any) -> dict[str, Any]:
    data: dict[str, Any] = task_output.model_dump(mode="json", exclude={"pydantic"})
    data["pydantic"] = value_to_json(task_output.pydantic) if task_output.pydantic is not None else None
    return data


def _task_output_from_json(data: dict[str, Any]) -> Any:
    from crewai.tasks.task_output import TaskOutput

    pydantic = value_from_json(data["pydantic"]) if data["pydantic"] is not None else None
    return TaskOutput.model_validate({**data, "pydantic": pydantic})
