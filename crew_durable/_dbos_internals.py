"""The few places crew_durable reaches below DBOS's public API, kept together.

DBOS 3.x has no public way to ask whether it has launched; to know the id
the next workflow started here will get, or the one a ``SetWorkflowID``
block already gave away; to give a thread a private, fixed range of step
ids inside a workflow; to start recovered workflows sooner than its
internal queue's first poll (a second after launch); or to check on a
running workflow more often than once a second. Each is needed
(late-definition warnings; stable ids for crewAI's task retries and for
cancelling a timed-out run; deterministic step ids for work crewAI runs in
threads; recovery that starts at once and moves on as soon as an
interrupted task is done), and each is small. ``tests/test_dbos_internals.py``
pins this module's assumptions so a DBOS upgrade that breaks them fails
loudly.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dbos import _core, _dbos
from dbos._context import (
    DBOSContext,
    _dbos_context_var,
    child_workflow_id,
    get_local_dbos_context,
    get_workflow_start_options,
)

PROMPT_POLL_SECONDS = 0.05
"""How often DBOS's internal queue polls during the first seconds after launch."""
PROMPT_WINDOW_SECONDS = 3.0
"""How long after launch the internal queue polls that often."""


def start_recovery_promptly() -> None:
    """Make DBOS start the workflows it recovers right after ``DBOS.launch()``.

    On launch DBOS re-enqueues this executor's pending workflows on its
    internal queue, whose worker first polls one interval (1 s) later. For a
    few seconds after launch the interval is made short; then DBOS's own
    default is restored, so an idle process polls no more than before.
    """
    registry = _dbos._get_or_create_dbos_registry()
    queue = registry.get_internal_queue()
    default = queue._polling_interval_sec
    queue._polling_interval_sec = min(default, PROMPT_POLL_SECONDS)
    stop = threading.Event()

    def restore_default() -> None:
        stop.wait(PROMPT_WINDOW_SECONDS)
        queue._polling_interval_sec = default

    registry.register_poller(stop, restore_default)


EXISTING_RUN_POLL_SECONDS = 0.1
"""How often a caller checks on a workflow that is already running (DBOS: 1 s)."""


def wait_for_existing_runs_promptly() -> None:
    """Check on an already-running workflow every 100 ms instead of every second.

    Calling a workflow whose id is taken by a run still in progress makes
    the caller poll that run's status. This happens when a recovered crew
    reaches the task DBOS is recovering beside it, and when code calls
    again, under the same id, a run that is being recovered. It never
    happens on a run's normal path, which executes its children inline.
    """
    _core.DEFAULT_POLLING_INTERVAL = EXISTING_RUN_POLL_SECONDS


def dbos_launched() -> bool:
    """Whether ``DBOS.launch()`` has run in this process."""
    instance = _dbos._dbos_global_instance
    return bool(instance is not None and instance._launched)


def consumed_workflow_id() -> str | None:
    """The id of the enclosing ``SetWorkflowID`` block, if a workflow already took it."""
    assigned = get_workflow_start_options().assigned_id
    return assigned.workflow_id if assigned is not None and assigned.consumed else None


def next_workflow_id() -> str | None:
    """The id the next workflow started in this context will get, when it is known."""
    options = get_workflow_start_options()
    if options.assigned_id is not None and not options.assigned_id.consumed:
        return options.assigned_id.workflow_id
    ctx = get_local_dbos_context()
    if ctx is not None and ctx.is_workflow():
        return child_workflow_id(ctx.workflow_id, ctx.function_id + 1, ctx.shard_key, options.shard_key)
    return None


class _StepIdRange(DBOSContext):
    """A workflow context confined to a reserved range of step ids.

    Every DBOS operation (step, child workflow, send, sleep) takes its id by
    incrementing ``function_id``; this context refuses to go past the end of
    its range instead of silently taking an id that belongs to a sibling.
    """

    limit: int

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "function_id" and value > getattr(self, "limit", value):
            raise StepRangeExhaustedError(
                "Work that crewAI runs in a thread inside a durable run (a parallel "
                f"tool call, an async task) used more than its {RANGE_SIZE} reserved "
                "step ids. Wrap that work in a @DBOS.workflow so its steps live in a "
                "child workflow of their own."
            )
        super().__setattr__(name, value)


class StepRangeExhaustedError(RuntimeError):
    """A thread inside a durable run took more step ids than it reserved."""


RANGE_SIZE = 100
"""Step ids reserved for each piece of work a durable run hands to a thread."""


def reserve_step_ranges(count: int) -> list[DBOSContext] | None:
    """Reserve ``count`` consecutive ranges of step ids in the current workflow.

    Returns one context per range, in order, or ``None`` outside a workflow.
    Work run under range ``i`` takes ids ``base + i * RANGE_SIZE + 1`` onwards,
    whatever the order in which threads get scheduled, so a recovered run
    replays every step at the id it was recorded under.
    """
    ctx = get_local_dbos_context()
    if ctx is None or not ctx.is_workflow():
        return None
    base = ctx.function_id
    ctx.function_id = base + count * RANGE_SIZE
    ranges: list[DBOSContext] = []
    for index in range(count):
        scoped = _StepIdRange()
        scoped.__dict__.update(ctx.create_child(is_for_workflow=False).__dict__)
        scoped.workflow_id = ctx.workflow_id
        scoped.executor_id = ctx.executor_id
        scoped.app_id = ctx.app_id
        scoped.shard_key = ctx.shard_key
        scoped.owner_xid = ctx.owner_xid
        scoped.workflow_deadline_epoch_ms = ctx.workflow_deadline_epoch_ms
        scoped.serialization_type = ctx.serialization_type
        scoped.limit = base + (index + 1) * RANGE_SIZE
        scoped.function_id = base + index * RANGE_SIZE
        ranges.append(scoped)
    return ranges


def switch_to(scoped: DBOSContext) -> None:
    """Make ``scoped`` the DBOS context of the rest of the current asyncio task.

    For work whose thread is started from a task crewAI creates (``asyncio.to_thread``
    copies the task's context), where no ``with`` block can surround it.
    """
    _dbos_context_var.set(scoped)


@contextmanager
def running_in(scoped: DBOSContext | None) -> Iterator[None]:
    """Make ``scoped`` the current thread's DBOS context for a block."""
    if scoped is None:
        yield
        return
    token = _dbos_context_var.set(scoped)
    try:
        yield
    finally:
        _dbos_context_var.reset(token)
