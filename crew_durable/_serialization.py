"""Plain-JSON forms of what durable runs record: completions, outputs, model classes.

DBOS pickles step outputs, and a pickle of a provider object can neither be
read by another version of that provider nor be trusted to hold no secrets.
Every step therefore returns a JSON document of built-in types, and
everything a recovered run needs travels in its JSON workflow inputs.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

from pydantic import BaseModel

from crew_durable._errors import NotRecoverableError

JSON = Any


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


def model_path(model: type[BaseModel]) -> str:
    """The import path of a pydantic model class, checked to import back to it."""
    path = f"{model.__module__}:{model.__qualname__}"
    try:
        found = import_model(path)
    except (ImportError, AttributeError, TypeError):
        found = None
    if found is not model:
        raise NotRecoverableError(
            f"The output model {model.__qualname__} cannot be imported as {path!r}, so a "
            "process recovering this run could not rebuild it. Define the model at module "
            "level (not inside a function) in an importable module."
        )
    return path


def import_model(path: str) -> type[BaseModel]:
    module_name, _, qualname = path.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not (isinstance(target, type) and issubclass(target, BaseModel)):
        raise TypeError(f"{path} is not a pydantic model")
    return target


def value_to_json(value: Any) -> JSON:
    """A completion or agent output as ``{"kind": ..., "value": ...}``.

    Whether the result is JSON-serialisable is checked by :func:`dumps` when
    the record is written.
    """
    if isinstance(value, str):
        return {"kind": "text", "value": value}
    if isinstance(value, BaseModel):
        return {
            "kind": "model",
            "model": model_path(type(value)),
            "value": value.model_dump(mode="json"),
        }
    if isinstance(value, list) and value and all(_is_tool_call(item) for item in value):
        return {"kind": "tool_calls", "value": [_tool_call_to_json(item) for item in value]}
    return {"kind": "json", "value": value}


def value_from_json(record: JSON) -> Any:
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
