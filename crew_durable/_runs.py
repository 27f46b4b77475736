"""Starting a crew_durable workflow: its id known in advance, its run, its attributes.

Every workflow crew_durable starts (a crew kickoff, a task's agent run, an
agent kickoff) is marked with workflow attributes that say what it is and
which run it belongs to (see ``_protocol``), so any process can list runs,
open requests and task totals without the crew code. The root of a run is
the outermost crew_durable workflow; its id is the run id that
``CrewClient`` takes, and its stream receives the events of the whole tree.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from dbos import SetWorkflowAttributes, SetWorkflowID

from crew_durable import _stream
from crew_durable._dbos_internals import next_workflow_id, start_attributes
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
