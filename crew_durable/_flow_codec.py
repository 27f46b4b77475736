"""Plain-JSON forms of what a durable flow records: method arguments, results and the flow's state.

A flow method may return anything crewAI passes on to its listeners: text,
numbers, dicts, a pydantic model, a crew's ``CrewOutput``, an enum (a
router's decision), or a ``@human_feedback`` method's ``HumanFeedbackResult``.
Each is recorded as ``{"kind": ..., "value": ...}`` and comes back as the same
type. A value with no JSON form is refused with an error that names where it
came from (the method, the argument, the state field), before anything is
recorded.
"""

from __future__ import annotations

import enum
import json
from datetime import datetime
from typing import Any

from crewai.crews.crew_output import CrewOutput
from crewai.flow.human_feedback import HumanFeedbackResult
from pydantic import BaseModel

from crew_durable._errors import NotRecoverableError
from crew_durable._output_models import object_at
from crew_durable._outputs import crew_output_from_json, crew_output_to_json
from crew_durable._serialization import JSON, check_record_format, stamped, value_from_json, value_to_json

_HOW = (
    "A durable flow records what each method receives and returns, and its state after each "
    "method, so a recovered run can go on from there; use plain data (str, numbers, lists, "
    "dicts), a pydantic model defined at module level, or a CrewOutput."
)


def encode(value: Any, what: str) -> JSON:
    """``value`` as a JSON record; ``what`` names where it came from, for the error."""
    if isinstance(value, CrewOutput):
        return stamped({"kind": "crew_output", "value": crew_output_to_json(value)})
    if isinstance(value, HumanFeedbackResult):
        return stamped(
            {
                "kind": "human_feedback",
                "value": {
                    "output": encode(value.output, f"{what} (its reviewed output)"),
                    "feedback": value.feedback,
                    "outcome": value.outcome,
                    "timestamp": value.timestamp.isoformat(),
                    "method_name": value.method_name,
                    "metadata": _plain(value.metadata, f"{what} (its metadata)"),
                },
            }
        )
    if isinstance(value, enum.Enum):
        return stamped({"kind": "enum", "enum": _class_path(type(value)), "value": _plain(value.value, what)})
    if isinstance(value, BaseModel):
        try:
            return value_to_json(value)
        except NotRecoverableError as error:
            raise NotRecoverableError(f"{what}: {error}") from None
    return stamped({"kind": "json", "value": _plain(value, what)})


def decode(record: JSON) -> Any:
    check_record_format(record, "a flow's recorded value")
    kind = record["kind"]
    if kind == "crew_output":
        return crew_output_from_json(record["value"])
    if kind == "human_feedback":
        data = record["value"]
        return HumanFeedbackResult(
            output=decode(data["output"]),
            feedback=data["feedback"],
            outcome=data["outcome"],
            timestamp=datetime.fromisoformat(data["timestamp"]),
            method_name=data["method_name"],
            metadata=data["metadata"],
        )
    if kind == "enum":
        cls = object_at(record["enum"])
        if isinstance(cls, type) and issubclass(cls, enum.Enum):
            return cls(record["value"])
        return record["value"]  # routes the same: crewAI routes on an enum's value
    return value_from_json(record)


def state_to_json(state: Any, flow_name: str) -> dict[str, Any]:
    """The flow's state as JSON; a field that has no JSON form is named in the error."""
    if isinstance(state, BaseModel):
        try:
            data = state.model_dump(mode="json")
        except Exception as error:  # pydantic says which field it could not serialize
            raise NotRecoverableError(
                f"The state of flow {flow_name!r} cannot be recorded as JSON: {error}. {_HOW}"
            ) from None
        return _plain(data, f"The state of flow {flow_name!r}")  # type: ignore[no-any-return]
    if isinstance(state, dict):
        for key, value in state.items():
            _plain(value, f"The state field {key!r} of flow {flow_name!r}")
        return dict(state)
    raise NotRecoverableError(f"The state of flow {flow_name!r} is a {type(state).__name__}. {_HOW}")


def _plain(value: Any, what: str) -> JSON:
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise NotRecoverableError(
            f"{what} holds a value that cannot be recorded as JSON ({error}). {_HOW}"
        ) from None
    return value


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"
