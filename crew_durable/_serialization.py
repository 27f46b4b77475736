"""Plain-JSON forms of what durable runs record: completions, outputs, model classes.

DBOS pickles step outputs, and a pickle of a provider object can neither be
read by another version of that provider nor be trusted to hold no secrets.
Every step therefore returns a JSON document of built-in types, and
everything a recovered run needs travels in its JSON workflow inputs.

Each recorded value (:func:`value_to_json`: a completion's result, a tool's
result, a run's output) carries ``"format"``, the record format
(``_protocol.FORMAT``) of the crew_durable that wrote it, and
:func:`value_from_json` checks it before reading: a record this code cannot
read (written by a newer release, or by one older than
:data:`OLDEST_READABLE_FORMAT`) raises ``RecordFormatError`` naming both
formats, instead of failing somewhere inside crewAI. Records written before
the stamp existed are of :data:`UNSTAMPED_FORMAT`.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from crew_durable._errors import NotRecoverableError, RecordFormatError
from crew_durable._output_models import ModelRef, model_from_reference, model_reference
from crew_durable._protocol import FORMAT

JSON = Any

FORMAT_KEY = "format"
"""The key of a record's format version."""
UNSTAMPED_FORMAT = 2
"""The format of records that carry no version: format 2 wrote them before the stamp was added."""
OLDEST_READABLE_FORMAT = 2
"""The oldest record format this code reads (see ``tests/test_upgrade.py`` and its fixtures)."""


def application_version_of(record_format: int) -> str:
    """The DBOS application version ``dbos_config`` gives processes of a record format."""
    return f"crew-durable-r{record_format}"


def check_record_format(record: Any, what: str) -> None:
    """Refuse a record this code cannot read, naming its format and this code's.

    ``record`` is a recorded dict (a step record, a run's inputs or output);
    ``what`` says what it is, for the message.
    """
    found = record.get(FORMAT_KEY, UNSTAMPED_FORMAT) if isinstance(record, dict) else UNSTAMPED_FORMAT
    if isinstance(found, int) and not isinstance(found, bool) and OLDEST_READABLE_FORMAT <= found <= FORMAT:
        return
    this = f"crew_durable record format {FORMAT} (application version {application_version_of(FORMAT)})"
    if not isinstance(found, int) or isinstance(found, bool):
        raise RecordFormatError(
            f"This {what} carries the record format {found!r}, which is not a crew_durable format; "
            f"this process runs {this}. The system database was changed by something else."
        )
    written = f"crew_durable record format {found} (application version {application_version_of(found)})"
    if found > FORMAT:
        raise RecordFormatError(
            f"This {what} was written by {written}, and this process runs {this}, which reads "
            f"formats {OLDEST_READABLE_FORMAT} to {FORMAT}. Recover the run with a process of the "
            f"newer release (upgrade crew_durable here), or leave it to them."
        )
    raise RecordFormatError(
        f"This {what} was written by {written}, and this process runs {this}, which reads formats "
        f"{OLDEST_READABLE_FORMAT} to {FORMAT}. Finish the run with a process of the older "
        f"release (application version {application_version_of(found)}), or cancel it."
    )


def stamped(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with this code's format, for records built outside :func:`value_to_json`."""
    return {FORMAT_KEY: FORMAT, **record}


def dumps(value: JSON, what: str) -> str:
    """``value`` as JSON text, or an error that names ``what`` produced it."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise NotRecoverableError(
            f"{what} produced a value that cannot be recorded as JSON ({error}). A durable "
            "run records every step's output so it can be replayed after a crash; return "
            "plain data (str, numbers, lists, dicts) or a pydantic model."
        ) from error


def checked_inputs(inputs: dict[str, Any] | None, what: str) -> dict[str, Any]:
    """Kickoff inputs as the workflow will record them; an input with no JSON form is named."""
    if inputs is not None and not isinstance(inputs, dict):
        raise TypeError(f"{what} must be a dict, got {type(inputs).__name__}.")
    checked = dict(inputs or {})
    for key, value in checked.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise NotRecoverableError(
                f"{what}: the input {key!r} is a {type(value).__name__}, which cannot be recorded "
                f"as JSON ({error}). A durable run records its inputs so a new process can run it "
                "again; crewAI interpolates str, int, float, bool, dict and list inputs, so pass "
                "e.g. value.isoformat() or model.model_dump()."
            ) from None
    return checked


def model_path(model: type[BaseModel]) -> ModelRef:
    """How a run records a pydantic model class: its import path ``"module:QualName"``, or, for a
    model defined inside a function, its path and JSON schema (see ``_output_models``)."""
    return model_reference(model)


def import_model(reference: ModelRef) -> type[BaseModel]:
    """The model class a run recorded with :func:`model_path` (rebuilt from its schema if need be)."""
    return model_from_reference(reference)


def value_to_json(value: Any) -> JSON:
    """A completion or agent output as ``{"format": ..., "kind": ..., "value": ...}``.

    Whether the result is JSON-serialisable is checked by :func:`dumps` when
    the record is written.
    """
    if isinstance(value, str):
        return stamped({"kind": "text", "value": value})
    if isinstance(value, BaseModel):
        return stamped(
            {
                "kind": "model",
                "model": model_path(type(value)),
                "value": value.model_dump(mode="json"),
            }
        )
    if isinstance(value, list) and value and all(_is_tool_call(item) for item in value):
        return stamped({"kind": "tool_calls", "value": [_tool_call_to_json(item) for item in value]})
    return stamped({"kind": "json", "value": value})


def value_from_json(record: JSON, what: str = "recorded value") -> Any:
    """What :func:`value_to_json` recorded, once its format is checked (``what`` names it in errors)."""
    check_record_format(record, what)
    kind = record["kind"]
    if kind == "model":
        return import_model(record["model"]).model_validate(record["value"])
    return record["value"]


def _is_tool_call(item: Any) -> bool:
    if isinstance(item, dict):
        return "function" in item or ("name" in item and ("input" in item or "arguments" in item))
    return hasattr(item, "function") or (hasattr(item, "name") and hasattr(item, "input"))


def _tool_call_to_json(item: Any) -> dict[str, Any]:
    """A provider's tool-call object as the plain dict crewAI also accepts."""
    if isinstance(item, dict):
        return item
    if isinstance(item, BaseModel):
        data = item.model_dump(mode="json", exclude_none=True)
        if isinstance(data, dict):
            return data
    raise NotRecoverableError(f"Cannot record the tool call {item!r} as JSON.")
