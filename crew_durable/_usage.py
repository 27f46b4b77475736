"""Token usage: measured per completion, summed per durable run.

crewAI keeps token usage on cumulative per-LLM counters. Differencing those
around a call double-counts when two runs share an LLM concurrently (which
is exactly what recovery does: a crew and its interrupted task resume side
by side). So each completion's own usage is measured while it happens,
recorded with the completion, and every run sums what its own steps and its
children report: a replayed run arrives at the same totals as the original.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from crewai.llms.base_llm import BaseLLM
from crewai.types.usage_metrics import UsageMetrics

from crew_durable._crewai_internals import set_token_usage, token_usage

USAGE_KEYS = (
    "total_tokens",
    "prompt_tokens",
    "completion_tokens",
    "successful_requests",
    "cached_prompt_tokens",
    "reasoning_tokens",
    "cache_creation_tokens",
)

Usage = dict[str, int]

_completion_sink: ContextVar[dict[str, Any] | None] = ContextVar("crew_durable_completion", default=None)
_run_usage: ContextVar[RunUsage | None] = ContextVar("crew_durable_run_usage", default=None)


class _UsageTap(dict[str, int]):
    """An LLM's usage counters that also report each increment to the running completion.

    Providers add to ``llm._token_usage[key]`` with ``+=``: a read, then a
    write. Remembering, per completion, the value it read makes the delta
    exact even when other threads update the same counters in between.
    """

    def __getitem__(self, key: str) -> int:
        value = super().__getitem__(key)
        sink = _completion_sink.get()
        if sink is not None:
            sink["read"][key] = value
        return value

    def __setitem__(self, key: str, value: int) -> None:
        sink = _completion_sink.get()
        if sink is not None:
            before = sink["read"].pop(key, super().get(key, 0))
            sink["usage"][key] = sink["usage"].get(key, 0) + value - before
        super().__setitem__(key, value)


def tap(llm: BaseLLM) -> None:
    """Make ``llm``'s counters report per-completion usage (idempotent)."""
    if not isinstance(token_usage(llm), _UsageTap):
        set_token_usage(llm, _UsageTap(token_usage(llm)))


@contextmanager
def measuring_completion() -> Iterator[Usage]:
    """Collect the usage a tapped LLM reports inside this block."""
    sink: dict[str, Any] = {"read": {}, "usage": {}}
    token = _completion_sink.set(sink)
    try:
        yield sink["usage"]
    finally:
        _completion_sink.reset(token)


def add_to_counters(llm: BaseLLM, usage: Mapping[str, int]) -> None:
    """Add recorded usage to an LLM's cumulative counters, as a live call would."""
    _add(token_usage(llm), usage)


class RunUsage:
    """The usage of one durable run.

    ``own`` is what this run's completions cost, per LLM role, so the caller
    can add it to the agent's own LLM counters. ``total`` is what crewAI
    would count for a crew: main-LLM completions (crewAI does not count a
    function-calling LLM), here and in every child run, each counted once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.own: dict[str, Usage] = {}
        self.total: Usage = dict.fromkeys(USAGE_KEYS, 0)

    def add_completion(self, role: str, usage: Mapping[str, int]) -> None:
        with self._lock:
            _add(self.own.setdefault(role, dict.fromkeys(USAGE_KEYS, 0)), usage)
            if role == "llm":
                _add(self.total, usage)

    def add_child(self, total: Mapping[str, int]) -> None:
        with self._lock:
            _add(self.total, total)

    def as_json(self) -> dict[str, Usage]:
        with self._lock:
            return {**{role: dict(usage) for role, usage in self.own.items()}, "total": dict(self.total)}


def _add(into: Usage, usage: Mapping[str, int]) -> None:
    for key, value in usage.items():
        into[key] = into.get(key, 0) + int(value)


@contextmanager
def collecting_run_usage() -> Iterator[RunUsage]:
    """Sum, for the duration of a run, the usage its completions and children report."""
    run = RunUsage()
    token = _run_usage.set(run)
    try:
        yield run
    finally:
        _run_usage.reset(token)


def report_completion(role: str, usage: Mapping[str, int]) -> None:
    """Count a completion's usage toward the run in progress, if any."""
    run = _run_usage.get()
    if run is not None:
        run.add_completion(role, usage)


def report_child(total: Mapping[str, int]) -> None:
    """Count a finished child run's total toward the run in progress, if any."""
    run = _run_usage.get()
    if run is not None:
        run.add_child(total)


def as_metrics(usage: Mapping[str, int]) -> UsageMetrics:
    return UsageMetrics(**{key: int(usage.get(key, 0)) for key in USAGE_KEYS})
