"""Starting a crew_durable workflow: its id known in advance, its run, its attributes.

Every workflow crew_durable starts (a crew kickoff, a task's agent run, an
agent kickoff) is marked with workflow attributes that say what it is and
which run it belongs to (see ``_protocol``), so any process can list runs,
open requests and task totals without the crew code. The root of a run is
the outermost crew_durable workflow; its id is the run id that
``CrewClient`` takes, and its stream receives the events of the whole tree.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from dbos import SetWorkflowAttributes, SetWorkflowID

from crew_durable import _stream
from crew_durable._dbos_internals import next_workflow_id, start_attributes
from crew_durable._errors import ReplayMismatchError
from crew_durable._protocol import RunKind, run_attributes


@dataclass(frozen=True)
class Start:
    """A workflow about to start."""

    workflow_id: str
    run_id: str
    stream: dict[str, Any] | None
    """Where the new workflow writes its events, if it is not a root (``RunStream.for_child``)."""


@contextmanager
def starting(kind: RunKind, name: str, **attributes: Any) -> Iterator[Start]:
    """Start the one workflow started in this block as a ``kind`` run named ``name``.

    Its id is the enclosing ``SetWorkflowID``'s, the child id DBOS derives
    inside a workflow, or a new one; attributes the caller set with
    ``SetWorkflowAttributes`` are kept beside crew_durable's.
    """
    parent = _stream.current()
    with ExitStack() as blocks:
        workflow_id = next_workflow_id()
        if workflow_id is None:
            workflow_id = str(uuid.uuid4())
            blocks.enter_context(SetWorkflowID(workflow_id))
        run_id = parent.run_id if parent is not None else workflow_id
        spec = parent.for_child() if parent is not None else None
        marks = run_attributes(kind, name, run_id, **attributes)
        blocks.enter_context(SetWorkflowAttributes({**(start_attributes() or {}), **marks}))
        yield Start(workflow_id, run_id, spec)


IDENTITY = "identity"
"""The key under which a run's output names what ran: checked when a recorded run is taken."""


def identity(kind: RunKind, name: str, what: Any) -> dict[str, str]:
    """What a run is: its kind, its name, and a digest of what it was asked (inputs, task)."""
    text = json.dumps(what, sort_keys=True, ensure_ascii=False, default=str)
    return {"kind": kind, "name": name, "digest": hashlib.sha256(text.encode()).hexdigest()[:16]}


def check_identity(output: Any, expected: dict[str, str], workflow_id: str | None) -> None:
    """Refuse a recorded output that another run left under the id being started.

    DBOS gives a child workflow the id ``<parent>-<step>`` and, on replay,
    returns what the workflow with that id recorded. If a parent starts its
    children in another order than when it recorded them (threads racing,
    code that changed), each call would silently get another's result;
    every crew_durable run's output names what ran, so this fails instead.
    """
    recorded = output.get(IDENTITY) if isinstance(output, dict) else None
    if recorded is None or recorded == expected:
        return
    raise ReplayMismatchError(
        f"The recorded run {workflow_id or ''!r} is a {recorded['kind']} run of {recorded['name']!r}"
        f"{' with other inputs' if recorded['name'] == expected['name'] else ''}, but this call starts "
        f"{expected['kind']} {expected['name']!r} under its id. The workflow that starts them did so "
        "in another order than when the run was recorded (concurrent threads, or code that changed): "
        "start concurrent runs under ids of their own (SetWorkflowID), or make the order deterministic."
    )
