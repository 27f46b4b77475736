"""The workflow side of ``DBOSAgent.kickoff``: crewAI's standalone agent run, as one DBOS workflow.

crewAI's ``Agent.kickoff`` builds a plain executor of its own (not the
agent's ``executor_class``), so it is made durable one level up: the whole
kickoff runs inside the ``crew_durable.agent_kickoff`` workflow, where the
agent's LLM completions are steps (its LLMs are ``DBOSLLM``), as are its
selected tools. The inputs are plain JSON (the agent's name, the messages,
the structured output model's import path); a recovered kickoff finds the
agent by name and runs crewAI's kickoff again, its finished steps replayed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from crewai.lite_agent_output import LiteAgentOutput
from dbos import DBOS, WorkflowSerializationFormat

from crew_durable import _registry, _stream
from crew_durable._errors import from_workflow_error
from crew_durable._protocol import ATTR_TASK
from crew_durable._runs import IDENTITY, check_identity, identity, starting
from crew_durable._serialization import dumps, import_model, model_path, value_from_json, value_to_json

KICKOFF = "crew_durable.agent_kickoff"
KICKOFF_ASYNC = "crew_durable.agent_kickoff_async"
_MESSAGE_KEYS = ("role", "content", "tool_call_id", "name", "tool_calls")


def describe(agent_name: str, messages: Any, response_format: type[Any] | None) -> dict[str, Any]:
    """The workflow's inputs: what a new process needs to run the kickoff again."""
    spec = {
        "agent": agent_name,
        "messages": messages,
        "response_model": model_path(response_format) if response_format is not None else None,
    }
    dumps(spec, f"The kickoff inputs of agent {agent_name!r}")
    return spec


def expected_identity(spec: dict[str, Any]) -> dict[str, str]:
    return identity("agent", spec["agent"], spec["messages"])


class Launch:
    """A kickoff being started: its inputs, where its events go, then what it recorded."""

    def __init__(self, spec: dict[str, Any], run: dict[str, Any]) -> None:
        self.spec, self.run = spec, run
        self.record: dict[str, Any] = {}

    def output(self) -> LiteAgentOutput:
        return output_from(self.record)


@contextmanager
def launching(agent_name: str, messages: Any, response_format: type[Any] | None) -> Iterator[Launch]:
    """Start a kickoff workflow in this block; afterwards, check that its record is this kickoff's."""
    spec = describe(agent_name, messages, response_format)
    try:
        with starting("agent", agent_name, **{ATTR_TASK: {"name": "kickoff"}}) as start:
            launch = Launch(spec, {"stream": start.stream})
            yield launch
    except Exception as error:
        raise from_workflow_error(error) from None
    check_identity(launch.record, expected_identity(spec), start.workflow_id)


@DBOS.workflow(name=KICKOFF, serialization_type=WorkflowSerializationFormat.PORTABLE)
def agent_kickoff(spec: dict[str, Any], run: dict[str, Any] | None = None) -> dict[str, Any]:
    """One ``Agent.kickoff`` of a named agent."""
    agent = _registry.agent(spec["agent"])
    with _stream.writing_to(_stream.stream_for((run or {}).get("stream"), spec["agent"], "kickoff")):
        _stream.emit("task_started", text=_text(spec["messages"]))
        output = agent.kickoff(spec["messages"], response_format=_model(spec))
        assert isinstance(output, LiteAgentOutput)
        _stream.emit("task_finished", text=output.raw)
    return _record(spec, output)


@DBOS.workflow(name=KICKOFF_ASYNC, serialization_type=WorkflowSerializationFormat.PORTABLE)
async def agent_kickoff_async(spec: dict[str, Any], run: dict[str, Any] | None = None) -> dict[str, Any]:
    """One ``Agent.kickoff_async`` of a named agent."""
    agent = _registry.agent(spec["agent"])
    with _stream.writing_to(_stream.stream_for((run or {}).get("stream"), spec["agent"], "kickoff")):
        _stream.emit("task_started", text=_text(spec["messages"]))
        output = await agent.kickoff_async(spec["messages"], response_format=_model(spec))
        _stream.emit("task_finished", text=output.raw)
    return _record(spec, output)


def output_from(record: dict[str, Any]) -> LiteAgentOutput:
    """The ``LiteAgentOutput`` a recorded kickoff returned."""
    pydantic = value_from_json(record["pydantic"]) if record["pydantic"] is not None else None
    return LiteAgentOutput(
        raw=record["raw"],
        pydantic=pydantic,
        agent_role=record["agent_role"],
        usage_metrics=record["usage_metrics"],
        messages=record["messages"],
    )


def _model(spec: dict[str, Any]) -> type[Any] | None:
    return import_model(spec["response_model"]) if spec["response_model"] else None


def _text(messages: Any) -> str:
    return messages if isinstance(messages, str) else str(messages[-1].get("content", "")) if messages else ""


def _record(spec: dict[str, Any], output: LiteAgentOutput) -> dict[str, Any]:
    record = {
        "raw": output.raw,
        "pydantic": value_to_json(output.pydantic) if output.pydantic is not None else None,
        "agent_role": output.agent_role,
        "usage_metrics": output.usage_metrics,
        "messages": [{k: m[k] for k in _MESSAGE_KEYS if k in m} for m in output.messages],  # type: ignore[literal-required]
        IDENTITY: expected_identity(spec),
    }
    dumps(record, f"The kickoff output of agent {spec['agent']!r}")
    return record
