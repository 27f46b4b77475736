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
import time
from collections.abc import Container, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from dbos import DBOSClient, WorkflowSerializationFormat, _core, _dbos
from dbos._context import (
    DBOSContext,
    _dbos_context_var,
    child_workflow_id,
    get_local_dbos_context,
    get_workflow_start_options,
    snapshot_step_context,
)
from dbos._error import DBOSMaxStepRetriesExceeded
from dbos._migration import get_migration_versions, get_sqlite_migration_versions
from dbos._serialization import deserialize_value, serialize_value
from dbos._sys_db import SystemDatabase, _dbos_streams_channel

PROMPT_POLL_SECONDS = 0.05
"""How often DBOS's internal queue polls during the first seconds after launch."""
PROMPT_WINDOW_SECONDS = 3.0
"""How long after launch the internal queue polls that often."""


_prompt_recovery_registered = False


def start_recovery_promptly() -> None:
    """Make DBOS start the workflows it recovers right after ``DBOS.launch()``.

    On launch DBOS re-enqueues this executor's pending workflows on its
    internal queue, whose worker first polls one interval (1 s) later. For a
    few seconds after launch the interval is made short; then DBOS's own
    default is restored, so an idle process polls no more than before.
    Idempotent.
    """
    global _prompt_recovery_registered
    if _prompt_recovery_registered:
        return
    _prompt_recovery_registered = True
    registry = _dbos._get_or_create_dbos_registry()
    queue = registry.get_internal_queue()
    default = queue._polling_interval_sec
    queue._polling_interval_sec = min(default, PROMPT_POLL_SECONDS)
    stop = threading.Event()

    def restore_default() -> None:  # runs at every launch of this process's DBOS
        queue._polling_interval_sec = min(default, PROMPT_POLL_SECONDS)
        stop.wait(PROMPT_WINDOW_SECONDS)
        queue._polling_interval_sec = default

    registry.register_poller(stop, restore_default)


def after_launch(func: Any) -> None:
    """Run ``func`` on a thread of its own once ``DBOS.launch()`` has started DBOS (now, if it has).

    DBOS starts its registered pollers at the end of a launch; ``func`` is
    one that returns when done.
    """
    _dbos._get_or_create_dbos_registry().register_poller(threading.Event(), func)


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


def dbos_configured() -> bool:
    """Whether a ``DBOS(config=...)`` instance exists in this process (launched or not)."""
    return _dbos._dbos_global_instance is not None


def wrap_step_bodies(wrap: Any) -> None:
    """Make every step body DBOS runs from now on in this process go through ``wrap``.

    ``wrap(name, func)`` returns the callable DBOS then runs in ``func``'s
    place. DBOS runs every step (``@DBOS.step`` functions and
    ``DBOS.run_step`` alike) through ``_core.invoke_step``, which calls the
    body only for a step not recorded yet, once per attempt. For
    ``crew_durable.testing``'s subprocesses only: it changes this process.
    """
    original = _core.invoke_step

    def invoke_step(dbos: Any, ctx: Any, func: Any, args: Any, kwargs: Any, **options: Any) -> Any:
        return original(dbos, ctx, wrap(str(options.get("step_name")), func), args, kwargs, **options)

    _core.invoke_step = invoke_step  # type: ignore[assignment]


def consumed_workflow_id() -> str | None:
    """The id of the enclosing ``SetWorkflowID`` block, if a workflow already took it."""
    assigned = get_workflow_start_options().assigned_id
    return assigned.workflow_id if assigned is not None and assigned.consumed else None


def start_attributes() -> dict[str, Any] | None:
    """The attributes an enclosing ``SetWorkflowAttributes`` block gives the next workflow."""
    return get_workflow_start_options().workflow_attributes


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


# -- a run's events, written to its root run's stream -------------------------

__all__ = ["DBOSContext", "DBOSMaxStepRetriesExceeded"]  # DBOS names with no public home yet

STREAM_EVENT_STEP = "crew_durable.stream_event"
"""The name under which a workflow records that it wrote one event to its run's stream."""


def _system_database() -> SystemDatabase:
    instance = _dbos._dbos_global_instance
    if instance is None or not instance._launched:
        raise RuntimeError("DBOS is not launched in this process.")
    return instance._sys_db


def reserve_operation() -> DBOSContext | None:
    """Take the next step id of the current workflow now, for an operation done later.

    For async code: an id taken before an ``await`` does not depend on which
    of several concurrent coroutines resumes first.
    """
    ctx = get_local_dbos_context()
    if ctx is None or not ctx.is_workflow():
        return None
    return ctx.snapshot_step_ctx()


def write_to_run_stream(
    run_id: str,
    run_step_id: int,
    key: str,
    events: list[tuple[Any, DBOSContext | None]],
    recorded: Container[int] = (),
) -> bool:
    """From workflow code, append ``events`` to the stream of workflow ``run_id``, each exactly once.

    DBOS writes a workflow's stream only from that workflow (or its steps);
    a crew's tasks are child workflows, and their events belong in the
    crew run's one stream so a reader sees one ordered sequence. Each write
    is recorded as an operation of the *current* workflow, in the same
    transaction as the stream row, as ``DBOS.write_stream`` records its own:
    a replayed run skips it. An event comes with the operation it was given
    when it happened (``reserve_operation``), or ``None`` for the next one
    now; several events are written in one transaction. ``run_step_id`` is
    the root run's step under which the writing workflow runs; DBOS's fork
    keeps the stream rows of steps before the fork point.

    ``recorded`` holds operations of the writing workflow known to be
    recorded stream events (:func:`recorded_stream_events`): a replay skips
    those without reading them one by one. Returns whether any event was
    found already written, that is, whether this is a replay.
    """
    sys_db = _system_database()
    writes = []
    for value, reserved in events:
        ctx = reserved if reserved is not None else snapshot_step_context(reserve_sleep_id=False)
        if ctx is None or not ctx.workflow_id:
            raise RuntimeError("write_to_run_stream() must be called from workflow code")
        if ctx.function_id in recorded:
            continue
        step = ctx.function_id if run_id == ctx.workflow_id else run_step_id
        serialized, serialization = serialize_value(
            value, WorkflowSerializationFormat.PORTABLE, sys_db.serializer
        )
        writes.append((ctx, sys_db._stream_insert_stmt(run_id, step, key, serialized, serialization)))
    if not writes:
        return len(events) > 0
    started = int(time.time() * 1000)
    while True:
        replayed = inserted = False
        try:
            with sys_db.engine.begin() as connection:
                for ctx, insert in writes:
                    found = sys_db._check_operation_execution_txn(
                        ctx.workflow_id, ctx.function_id, STREAM_EVENT_STEP, conn=connection
                    )
                    if found is not None:
                        sys_db._raise_recorded_error(found)
                        replayed = True
                        continue  # written before this replay
                    connection.execute(insert)
                    inserted = True
                    sys_db._record_operation_result_txn(
                        {
                            "workflow_uuid": ctx.workflow_id,
                            "function_id": ctx.function_id,
                            "function_name": STREAM_EVENT_STEP,
                            "started_at_epoch_ms": started,
                            "output": None,
                            "error": None,
                            "serialization": None,
                            "child_workflow_id": None,
                        },
                        int(time.time() * 1000),
                        conn=connection,
                    )
        except sa.exc.IntegrityError as error:
            if sys_db._is_unique_constraint_violation(error):
                continue  # a concurrent writer took that offset; the insert computes the next one
            raise
        if inserted:
            sys_db._signal_notification(_dbos_streams_channel, f"{run_id}::{key}")
        return replayed


def recorded_stream_events(workflow_id: str) -> frozenset[int]:
    """The operations of ``workflow_id`` recorded as stream events, in one read (for its replay)."""
    sys_db = _system_database()
    outputs = sys_db.tables.operation_outputs
    query = sa.select(outputs.c.function_id).where(
        *sys_db._wf(outputs, workflow_id), outputs.c.function_name == STREAM_EVENT_STEP
    )
    with sys_db.engine.connect() as connection:
        return frozenset(int(row[0]) for row in connection.execute(query))


def write_live_to_run_stream(run_id: str, run_step_id: int, key: str, value: Any) -> None:
    """From inside a step, append ``value`` to the stream of workflow ``run_id`` (at least once)."""
    sys_db = _system_database()
    sys_db.write_stream_from_step(
        run_id, run_step_id, key, value, serialization_type=WorkflowSerializationFormat.PORTABLE
    )


def workflow_attributes(workflow_id: str) -> dict[str, Any]:
    """A workflow's attributes, read without recording a step (DBOS.get_workflow_status would)."""
    status = _system_database().get_workflow_status(workflow_id)
    attributes = status.get("attributes") if status else None
    return dict(attributes) if isinstance(attributes, dict) else {}


def next_step_id() -> int | None:
    """The id the next step of the current workflow will get, or ``None`` outside workflow code."""
    ctx = get_local_dbos_context()
    if ctx is None or not ctx.is_workflow():
        return None
    return ctx.function_id + 1


# -- answers to a run's questions ---------------------------------------------


def message_sent_with_key(client: DBOSClient, destination_id: str, idempotency_key: str) -> Any:
    """The message DBOS stored for ``idempotency_key`` to ``destination_id``, or ``None``.

    DBOS keeps at most one message per idempotency key and destination (a
    second send with the key does nothing), but does not say whether a
    send was the first. Reading the stored message back does: a client
    that finds its own answer there is the one that decided.
    """
    sys_db = client._sys_db
    notifications = sys_db.tables.notifications
    query = sa.select(notifications.c.message, notifications.c.serialization).where(
        *sys_db._wf(notifications, destination_id, "destination_uuid"),
        notifications.c.message_uuid == f"{idempotency_key}::{destination_id}",
    )
    with sys_db.engine.begin() as connection:
        row = connection.execute(query).first()
    if row is None:
        return None
    return deserialize_value(row[0], row[1], sys_db.serializer)


def migration_versions(client: DBOSClient) -> tuple[int, set[int]]:
    """The client's system database schema version, and the versions this DBOS would leave it at.

    ``DBOSClient`` never migrates; an application's ``DBOS.launch()`` does.
    Version 0 means no application has created the tables yet. On Postgres
    the latest version depends on whether the application uses LISTEN/NOTIFY.
    """
    sys_db = client._sys_db
    if sys_db.engine.dialect.name == "sqlite":
        recorded, latest = get_sqlite_migration_versions(sys_db.engine)
        return recorded, {latest}
    schema = sys_db.schema or "dbos"
    recorded, with_notify = get_migration_versions(sys_db.engine, schema, use_listen_notify=True)
    _, without = get_migration_versions(sys_db.engine, schema, use_listen_notify=False)
    return recorded, {with_notify, without}
