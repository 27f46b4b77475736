"""The process-wide registry of named agents, crews and flows.

A workflow's inputs name the agent or crew it runs; a process recovering
that workflow finds the code to run here. That is why names are required,
unique and stable, and why agents and crews are defined at module level,
before ``DBOS.launch()``, like any DBOS workflow.
"""

from __future__ import annotations

import logging
import threading
import warnings
from contextvars import ContextVar
from typing import TYPE_CHECKING, TypeVar

from crew_durable._dbos_internals import dbos_launched
from crew_durable._errors import InvalidNameError, NotDefinedError

if TYPE_CHECKING:
    from crew_durable._agent import DBOSAgent
    from crew_durable._crew import DBOSCrew
    from crew_durable._flow import DBOSFlow

logger = logging.getLogger("crew_durable")

_T = TypeVar("_T")
_lock = threading.Lock()
_agents: dict[str, DBOSAgent] = {}
_crews: dict[str, DBOSCrew] = {}
_flows: dict[str, DBOSFlow] = {}


crew_in_progress: ContextVar[str | None] = ContextVar("crew_durable_crew", default=None)
"""The name of the durable crew whose kickoff is running in this context, if any."""


class LateDefinitionWarning(UserWarning):
    """An agent or crew was defined after ``DBOS.launch()``."""


def check_name(kind: str, name: object) -> str:
    """``name`` if it is a usable agent or crew name, else a clear error."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidNameError(
            f"{kind} needs a non-empty name (got {name!r}): the name identifies its "
            "workflows and steps in the database, so pick one that stays the same "
            "across deployments."
        )
    if name != name.strip():
        raise InvalidNameError(f"{kind} name {name!r} has leading or trailing whitespace.")
    return name


def check_crew_name_free(name: str) -> None:
    """Refuse a taken crew name before its agents are wrapped (and registered) under it."""
    with _lock:
        if name in _crews:
            raise _taken("crew", name)


def register_agent(name: str, agent: DBOSAgent) -> None:
    _register("agent", _agents, name, agent)


def register_crew(name: str, crew: DBOSCrew) -> None:
    _register("crew", _crews, name, crew)


def register_flow(name: str, flow: DBOSFlow) -> None:
    _register("flow", _flows, name, flow)


def agent(name: str) -> DBOSAgent:
    return _lookup("agent", _agents, name, "DBOSAgent(agent_name=...)")


def crew(name: str) -> DBOSCrew:
    return _lookup("crew", _crews, name, "DBOSCrew(crew_name=...)")


def flow(name: str) -> DBOSFlow:
    return _lookup("flow", _flows, name, "DBOSFlow(flow_name=..., flow=...)")


def _register(kind: str, table: dict[str, _T], name: str, value: _T) -> None:
    with _lock:
        if name in table:
            raise _taken(kind, name)
        table[name] = value
    if dbos_launched():
        message = (
            f"The {kind} {name!r} was defined after DBOS.launch(). DBOS recovers runs as "
            f"soon as it launches, so a run of this {kind} interrupted by a crash can only "
            f"be recovered by a process that defines the {kind} before DBOS.launch(). "
            "Define it at module level."
        )
        logger.warning(message)
        warnings.warn(message, LateDefinitionWarning, stacklevel=4)


def _taken(kind: str, name: str) -> InvalidNameError:
    article = "An" if kind == "agent" else "A"
    return InvalidNameError(
        f"{article} {kind} named {name!r} is already defined in this process. Names "
        f"must be unique: each one names the workflows and steps of that {kind} in "
        "the database."
    )


def _lookup(kind: str, table: dict[str, _T], name: str, how: str) -> _T:
    try:
        return table[name]
    except KeyError:
        raise NotDefinedError(
            f"No {kind} named {name!r} is defined in this process, so its run cannot "
            f"be resumed here. Define it with {how} at module level, before "
            "DBOS.launch(), in every process that may recover its runs."
        ) from None
