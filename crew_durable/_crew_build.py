"""Building a durable crew: a copy of the user's crew whose agents are all DBOSAgents.

Plain agents are wrapped as ``<crew_name>.<role>``; a hierarchical crew's
manager (which crewAI would build as a plain ``Agent`` at kickoff) is a
``DBOSAgent`` named ``<crew_name>.manager``; a crew's planner LLM is a
``DBOSLLM``. The crew is rebuilt with crewAI's own constructor so its
validators wire the new agents (cache handler, rate limiter, tasks).
"""

from __future__ import annotations

import re

from crewai import Agent, Crew, Process, Task
from crewai.agents.agent_builder.base_agent import BaseAgent
from crewai.utilities.i18n import get_i18n
from crewai.utilities.llm_utils import create_llm
from crewai.utilities.planning_handler import CrewPlanner

from crew_durable._agent import DBOSAgent
from crew_durable._crewai_internals import crew_memory
from crew_durable._errors import InvalidNameError
from crew_durable._llm import DBOSLLM

# Fields of the original crew that are rebuilt rather than carried over.
_REBUILT_FIELDS = frozenset({"id", "agents", "tasks", "manager_agent", "manager_llm"})


def durable_crew(crew_name: str, orig: Crew) -> Crew:
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
    if crew_memory(orig) is not None:
        fields["memory"] = crew_memory(orig)
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


def durable_planning_llm(crew_name: str, orig: Crew) -> DBOSLLM:
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
