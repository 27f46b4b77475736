"""crew_durable: durable crewAI agents and crews on DBOS.

Every LLM completion and every opted-in tool call of a wrapped agent is a
DBOS step checkpointed to the system database (Postgres, or SQLite by
default); a crew or task run interrupted by a crash resumes where it
stopped, without paying for any finished step twice.
"""

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
from crew_durable._human_input import set_human_input_provider
from crew_durable._llm import DBOSLLM
from crew_durable._protocol import InputRequest, StreamEvent, kept_tokens
from crew_durable._registry import LateDefinitionWarning
from crew_durable._step_config import StepConfig
from crew_durable._tool_steps import DBOSTool, idempotency_key

__all__ = [
    "DBOSLLM",
    "AnswerRefusedError",
    "CrewClient",
    "CrewDurableError",
    "CrewRunHandle",
    "DBOSAgent",
    "DBOSCrew",
    "DBOSTool",
    "DatabaseNotReadyError",
    "DurableAgentExecutor",
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
