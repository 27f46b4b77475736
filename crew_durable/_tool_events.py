"""Tool calls in a run's stream: ``tool_started`` and ``tool_finished``, through crewAI's tool hooks.

crewAI runs its tool-call hooks around every tool call, whichever way the
agent calls tools (native function calling, parallel calls, ReAct text).
Inside a durable run, hooks scoped to that run (crewAI's ``scoped_hooks``)
write the two events; they are recorded events, written exactly once. A
tool call that crewAI's cache answers runs no hook and writes no event.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from crewai.hooks.dispatch import InterceptionPoint, register_scoped, scoped_hooks
from crewai.hooks.tool_hooks import ToolCallHookContext

from crew_durable import _stream


def _started(context: ToolCallHookContext) -> None:
    _stream.emit(
        "tool_started",
        text=context.tool_name,
        data={"tool": context.tool_name, "arguments": _plain(context.tool_input)},
    )


def _finished(context: ToolCallHookContext) -> None:
    _stream.emit(
        "tool_finished",
        text=None if context.tool_result is None else str(context.tool_result),
        data={"tool": context.tool_name},
    )


@contextmanager
def observed() -> Iterator[None]:
    """Write the tool calls of the workflow code in this block to its run's stream."""
    with scoped_hooks():
        register_scoped(InterceptionPoint.PRE_TOOL_CALL, _started)
        register_scoped(InterceptionPoint.POST_TOOL_CALL, _finished)
        yield


def _plain(arguments: Any) -> Any:
    """Tool arguments as JSON data (what is not JSON becomes its text)."""
    try:
        return json.loads(json.dumps(arguments, default=str))
    except (TypeError, ValueError):
        return str(arguments)
