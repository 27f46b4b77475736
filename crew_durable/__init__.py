"""crew_durable: durable crewAI agents, crews and flows on DBOS.

Every LLM completion and every opted-in tool call of a wrapped agent is a
DBOS step checkpointed to the system database (Postgres, or SQLite by
default); a crew or task run interrupted by a crash resumes where it
stopped, without paying for any finished step twice.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crew_durable._agent import DBOSAgent
    from crew_durable._client import CrewClient
    from crew_durable._config import dbos_config, recover_promptly
    from crew_durable._crew import CrewRunHandle, DBOSCrew
    from crew_durable._errors import (
        AnswerRefusedError,
        CrewDurableError,
        DatabaseNotReadyError,
        InvalidNameError,
        NotDefinedError,
        NotRecoverableError,
        RecordedError,
        RecordFormatError,
        ReplayMismatchError,
        UnknownRunError,
    )
    from crew_durable._executor import DurableAgentExecutor
    from crew_durable._flow import DBOSFlow, FlowRunHandle
    from crew_durable._human_input import set_human_input_provider
    from crew_durable._llm import DBOSLLM
    from crew_durable._protocol import InputRequest, StreamEvent, kept_tokens
    from crew_durable._registry import LateDefinitionWarning
    from crew_durable._step_config import StepConfig
    from crew_durable._tool_steps import DBOSTool, idempotency_key

_PUBLIC = {
    "AnswerRefusedError": "crew_durable._errors",
    "CrewClient": "crew_durable._client",
    "CrewDurableError": "crew_durable._errors",
    "CrewRunHandle": "crew_durable._crew",
    "DBOSAgent": "crew_durable._agent",
    "DBOSCrew": "crew_durable._crew",
    "DBOSFlow": "crew_durable._flow",
    "DBOSLLM": "crew_durable._llm",
    "DBOSTool": "crew_durable._tool_steps",
    "DatabaseNotReadyError": "crew_durable._errors",
    "DurableAgentExecutor": "crew_durable._executor",
    "FlowRunHandle": "crew_durable._flow",
    "InputRequest": "crew_durable._protocol",
    "InvalidNameError": "crew_durable._errors",
    "LateDefinitionWarning": "crew_durable._registry",
    "NotDefinedError": "crew_durable._errors",
    "NotRecoverableError": "crew_durable._errors",
    "RecordFormatError": "crew_durable._errors",
    "RecordedError": "crew_durable._errors",
    "ReplayMismatchError": "crew_durable._errors",
    "StepConfig": "crew_durable._step_config",
    "StreamEvent": "crew_durable._protocol",
    "UnknownRunError": "crew_durable._errors",
    "dbos_config": "crew_durable._config",
    "idempotency_key": "crew_durable._tool_steps",
    "kept_tokens": "crew_durable._protocol",
    "recover_promptly": "crew_durable._config",
    "set_human_input_provider": "crew_durable._human_input",
}
"""Where each public name lives. Names load on first use, so a process that only reads runs
(``CrewClient``, the ``crew-durable`` command line) does not pay for importing crewAI."""


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'crew_durable' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


__all__ = [
    "DBOSLLM",
    "AnswerRefusedError",
    "CrewClient",
    "CrewDurableError",
    "CrewRunHandle",
    "DBOSAgent",
    "DBOSCrew",
    "DBOSFlow",
    "DBOSTool",
    "DatabaseNotReadyError",
    "DurableAgentExecutor",
    "FlowRunHandle",
    "InputRequest",
    "InvalidNameError",
    "LateDefinitionWarning",
    "NotDefinedError",
    "NotRecoverableError",
    "RecordFormatError",
    "RecordedError",
    "ReplayMismatchError",
    "StepConfig",
    "StreamEvent",
    "UnknownRunError",
    "dbos_config",
    "idempotency_key",
    "kept_tokens",
    "recover_promptly",
    "set_human_input_provider",
]
