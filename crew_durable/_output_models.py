"""Output models that cannot be imported by path, recorded with their JSON schema.

A run records the pydantic model of its answer (``output_pydantic``,
``output_json``, ``response_format``) so that a recovering process can
rebuild the answer. A model defined at module level is recorded by its
import path and comes back as itself. A model defined inside a function (as
crewAI's own tests define them) has no import path: it is recorded by its
path *and* its JSON schema. In the process that defined it, the path finds
the class itself (every such model is remembered when it is recorded). A
fresh process that recovers the run before it has defined the model again
gets an equivalent model built from the recorded schema: same name, fields,
types, defaults, descriptions and nested models, without the original's
validators, methods or computed fields. A ``LocalOutputModelWarning`` says
so once per model, when it is first recorded.
"""

from __future__ import annotations

import datetime
import importlib
import json
import logging
import threading
import warnings
from typing import Any, Literal, Optional, Union, cast

from pydantic import BaseModel, ConfigDict, Field, create_model

ModelRef = Union[str, dict[str, Any]]  # noqa: UP007  (a runtime alias)
"""How a run records a model: ``"module:QualName"``, or ``{"path": ..., "schema": ...}``."""

logger = logging.getLogger("crew_durable")


class LocalOutputModelWarning(UserWarning):
    """An output model cannot be imported by path: a recovering process may rebuild it from its schema."""


_lock = threading.Lock()
_defined_here: dict[str, list[type[BaseModel]]] = {}
_rebuilt: dict[str, type[BaseModel]] = {}
_warned: set[str] = set()


def model_reference(model: type[BaseModel]) -> ModelRef:
    """How a run records ``model``: its import path, or for a local model its path and JSON schema."""
    path = f"{model.__module__}:{model.__qualname__}"
    if _imported(path) is model:
        return path
    schema = model.model_json_schema()
    with _lock:
        rebuilt_here = any(each is model for each in _rebuilt.values())
        known = _defined_here.setdefault(path, [])
        if not rebuilt_here and not any(each is model for each in known):
            known.append(model)
        first = not rebuilt_here and path not in _warned
        _warned.add(path)
    if first:
        warnings.warn(
            f"The output model {model.__qualname__} is defined inside a function, so it cannot be "
            f"imported as {path!r}. The run works; a process that recovers it before defining the "
            "model again uses an equivalent model rebuilt from its JSON schema (the same fields, "
            "types and defaults, without its validators or methods). Define the model at module "
            "level for recovery to use the class itself.",
            LocalOutputModelWarning,
            stacklevel=3,
        )
    return {"path": path, "schema": schema}


def model_from_reference(reference: ModelRef) -> type[BaseModel]:
    """The model a run recorded: imported by path, the local class defined in this process, or rebuilt."""
    if isinstance(reference, str):
        found = _imported(reference)
        if found is None:
            raise ImportError(f"No pydantic model can be imported as {reference!r}.")
        return found
    path, schema = str(reference["path"]), reference["schema"]
    found = _imported(path)
    if found is not None:
        return found
    key = json.dumps(schema, sort_keys=True)
    with _lock:
        for model in reversed(_defined_here.get(path, [])):
            if json.dumps(model.model_json_schema(), sort_keys=True) == key:
                return model
        rebuilt = _rebuilt.get(f"{path}\n{key}")
        if rebuilt is None:
            module, _, qualname = path.partition(":")
            rebuilt = _rebuilt[f"{path}\n{key}"] = model_from_schema(schema, module, qualname)
            logger.info("Output model %s rebuilt from the JSON schema recorded with the run.", path)
        return rebuilt


def object_at(path: str) -> Any:
    """The object a ``module:qualname`` path names, or ``None`` if it cannot be imported by it."""
    module_name, _, qualname = path.partition(":")
    if "<locals>" in qualname:
        return None
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError, ValueError):
        return None
    return target


def _imported(path: str) -> type[BaseModel] | None:
    target = object_at(path)
    return target if isinstance(target, type) and issubclass(target, BaseModel) else None


# -- a pydantic model from a JSON schema -------------------------------------------


def model_from_schema(schema: dict[str, Any], module: str = __name__, qualname: str = "") -> type[BaseModel]:
    """A pydantic model whose JSON schema is ``schema`` (as pydantic's ``model_json_schema`` gives it)."""
    return _Builder(schema, module).model(schema, qualname.rpartition(".")[2] or "Model", qualname)


_FORMATS: dict[str, Any] = {
    "date-time": datetime.datetime,
    "date": datetime.date,
    "time": datetime.time,
    "duration": datetime.timedelta,
}
_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool, "null": type(None)}


class _Builder:
    def __init__(self, root: dict[str, Any], module: str) -> None:
        self.defs: dict[str, Any] = root.get("$defs", {})
        self.module = module
        self.models: dict[str, Any] = {}

    def model(self, schema: dict[str, Any], name: str, qualname: str = "") -> type[BaseModel]:
        required = set(schema.get("required", []))
        fields: dict[str, Any] = {}
        for position, (key, prop) in enumerate(schema.get("properties", {}).items()):
            annotation = self.annotation(prop, f"{name}_{key}")
            if key in required:
                default: Any = ...
            elif "default" in prop:
                default = prop["default"]
            else:
                annotation, default = Optional[annotation], None  # noqa: UP045
            extra = {"description": prop["description"]} if "description" in prop else {}
            if "title" in prop:
                extra["title"] = prop["title"]
            usable = key.isidentifier() and not key.startswith("_") and key not in _RESERVED
            field_name = key if usable else f"field_{position}"
            if not usable:
                extra["alias"] = key
            fields[field_name] = (annotation, Field(default, **extra))
        title = str(schema.get("title") or name)
        model = create_model(
            title,
            __config__=ConfigDict(populate_by_name=True),
            __doc__=schema.get("description"),
            __module__=self.module,
            **fields,
        )
        if qualname:
            model.__qualname__ = qualname
        return cast("type[BaseModel]", model)

    def annotation(self, schema: dict[str, Any], name: str) -> Any:
        if "$ref" in schema:
            ref = str(schema["$ref"]).rsplit("/", 1)[-1]
            if ref not in self.models:
                self.models[ref] = Any  # a recursive model refers to itself as Any
                self.models[ref] = self.model(self.defs.get(ref, {}), ref)
            return self.models[ref]
        for combinator in ("anyOf", "oneOf"):
            if combinator in schema:
                members = tuple(self.annotation(each, name) for each in schema[combinator])
                return Union[members] if len(members) > 1 else members[0]  # noqa: UP007
        if "allOf" in schema and len(schema["allOf"]) == 1:
            return self.annotation(schema["allOf"][0], name)
        if "enum" in schema:
            return Literal[tuple(schema["enum"])]
        if "const" in schema:
            return Literal[schema["const"]]
        kind = schema.get("type")
        if isinstance(kind, list):
            return Union[tuple(self.annotation({**schema, "type": each}, name) for each in kind)]  # noqa: UP007
        if kind == "string":
            return _FORMATS.get(str(schema.get("format")), str)
        if kind in _TYPES:
            return _TYPES[kind]
        if kind == "array":
            items = schema.get("items")
            return list[self.annotation(items, name)] if isinstance(items, dict) else list[Any]  # type: ignore[misc]
        if kind == "object":
            if schema.get("properties"):
                return self.model(schema, str(schema.get("title") or name))
            values = schema.get("additionalProperties")
            return dict[str, self.annotation(values, name)] if isinstance(values, dict) else dict[str, Any]  # type: ignore[misc]
        return Any


_RESERVED = frozenset(dir(BaseModel))
