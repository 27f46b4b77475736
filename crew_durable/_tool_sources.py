"""Which tools a run had, recorded so a recovering process can find them again.

A tool object cannot go into the database, so a run records where each of
its tools came from: the agent's own tools (found again by name on the
agent the run names), the tools crewAI adds at run time from the agent's
MCP servers and platform apps (listed again from the same servers), the
task's own tools (found on the durable crew's task with the same key),
crewAI's memory tools (rebuilt on the agent's or the crew's memory), or
crewAI's delegation tools (rebuilt from the coworkers' names and the role,
goal and backstory they had in this run, which a crew may have filled in
from its inputs).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from crewai import Crew, Task
from crewai.agents.agent_builder.base_agent import BaseAgent
from crewai.tools.agent_tools.agent_tools import AgentTools
from crewai.tools.agent_tools.base_agent_tools import BaseAgentTool
from crewai.tools.base_tool import BaseTool
from crewai.tools.memory_tools import RecallMemoryTool, RememberTool, create_memory_tools

from crew_durable import _registry
from crew_durable._errors import NotDefinedError

logger = logging.getLogger("crew_durable")
_warned: set[str] = set()


def describe(tools: Sequence[BaseTool], agent: BaseAgent, task: Task | None) -> list[dict[str, Any]]:
    """Record, for each tool of a run, how a recovering process can get it back."""
    return [_describe(tool, agent, task) for tool in tools]


def _describe(tool: BaseTool, agent: BaseAgent, task: Task | None) -> dict[str, Any]:
    runtime_source = getattr(agent, "_runtime_tools", {}).get(tool.name)
    if runtime_source is not None:
        return {"name": tool.name, "source": runtime_source}
    if _has(agent.tools, tool):
        return {"name": tool.name, "source": "agent"}
    if task is not None and _has(task.tools, tool):
        return {"name": tool.name, "source": "task", "task": task.key}
    if isinstance(tool, (RecallMemoryTool, RememberTool)):
        return {"name": tool.name, "source": "memory"}
    if isinstance(tool, BaseAgentTool) and all(_name_of(a) for a in tool.agents):
        coworkers = [
            {"agent": _name_of(a), "role": a.role, "goal": a.goal, "backstory": a.backstory}
            for a in tool.agents
        ]
        return {"name": tool.name, "source": "delegation", "coworkers": coworkers}
    if tool.name not in _warned:
        _warned.add(tool.name)
        logger.warning(
            "Tool %r was given to agent %r's run but is not one of the agent's tools; a "
            "process recovering this run could not find it. Pass it in Agent(tools=[...]).",
            tool.name,
            _name_of(agent),
        )
    return {"name": tool.name, "source": "unknown"}


def resolve(descriptions: Sequence[dict[str, Any]], agent: BaseAgent, crew: Crew | None) -> list[BaseTool]:
    """The tools a recovered run had, rebuilt from their descriptions."""
    runtime = _RuntimeTools(agent)
    return [_resolve(description, agent, crew, runtime) for description in descriptions]


class _RuntimeTools:
    """The agent's MCP and platform tools, listed again at most once per recovered run."""

    def __init__(self, agent: Any) -> None:
        self._agent = agent
        self._listed: dict[str, list[BaseTool]] = {}

    def of(self, source: str) -> list[BaseTool]:
        if source not in self._listed:
            agent = self._agent
            mcps, apps = getattr(agent, "mcps", None), getattr(agent, "apps", None)
            if source == "mcp" and mcps:
                self._listed[source] = agent.get_mcp_tools(mcps)
            elif source == "platform" and apps:
                self._listed[source] = agent.get_platform_tools(apps)
            else:
                self._listed[source] = []
        return self._listed[source]


def _resolve(
    description: dict[str, Any], agent: BaseAgent, crew: Crew | None, runtime: _RuntimeTools
) -> BaseTool:
    name = description["name"]
    source = description["source"]
    if source in ("mcp", "platform"):
        for tool in runtime.of(source):
            if tool.name == name:
                return tool
    elif source == "agent":
        for tool in agent.tools or []:
            if tool.name == name:
                return tool
    elif source == "task" and crew is not None:
        for task in crew.tasks:
            for tool in task.tools or [] if task.key == description["task"] else []:
                if tool.name == name:
                    return tool
    elif source == "memory":
        memory = getattr(agent, "memory", None) or getattr(crew, "_memory", None)
        for tool in create_memory_tools(memory) if memory is not None else []:
            if tool.name == name:
                return tool
    elif source == "delegation":
        coworkers = [_coworker(entry) for entry in description["coworkers"]]
        for tool in AgentTools(agents=coworkers).tools():
            if tool.name == name:
                return tool
    where = _WHERE_TOOLS_COME_FROM.get(source, "Agent(tools=[...])")
    raise NotDefinedError(
        f"The recovered run of agent {_name_of(agent)!r} used a tool named {name!r} that "
        f"this process cannot find. Give the agent the same tools ({where}) in every "
        "process that may recover its runs."
    )


_WHERE_TOOLS_COME_FROM = {
    "mcp": "Agent(mcps=[...]), with the servers reachable",
    "platform": "Agent(apps=[...])",
    "task": "Task(tools=[...])",
}


def _coworker(entry: dict[str, Any]) -> BaseAgent:
    """A coworker as it was in the run: the named agent with the run's role, goal, backstory."""
    coworker = _registry.agent(entry["agent"]).copy()
    coworker.role = entry["role"]
    coworker.goal = entry["goal"]
    coworker.backstory = entry["backstory"]
    return coworker


def _has(tools: Sequence[BaseTool] | None, tool: BaseTool) -> bool:
    return any(tool is own or tool.name == own.name for own in tools or [])


def _name_of(agent: BaseAgent) -> str | None:
    name = getattr(agent, "agent_name", None)
    return name if isinstance(name, str) else None
