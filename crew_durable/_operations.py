"""What an operator does to a whole run: cancel it, resume it, fork it from a task or a step.

A crew run is a tree of DBOS workflows (the kickoff, a child per task, their
own children). DBOS acts on one workflow at a time, so each operation here
acts on the tree, through either API: ``DBOS`` in the application's
process, or a ``DBOSClient`` anywhere else (both have the same methods).

- **cancel** cancels the kickoff and every descendant, so the task that is
  running stops at its next step instead of going on paying for completions;
- **resume** resumes the cancelled descendants together with the kickoff,
  so the kickoff's replay finds its tasks running again instead of
  cancelled (which would end it in ERROR);
- **fork** starts a new run that reuses every recorded result before its
  point: before task N (DBOS's fork of the kickoff), or before step M of
  task N (a fork of that task's run, which the forked kickoff waits on in
  place of the original, DBOS's ``replacement_children``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from dbos import SetWorkflowID, WorkflowStatus

from crew_durable._errors import CrewDurableError, UnknownRunError
from crew_durable._protocol import ATTR_FORMAT, ATTR_KIND, ATTR_RUN, FORKED_FROM, TASK_RUN_WORKFLOWS

_CANCELLABLE = ("PENDING", "ENQUEUED", "DELAYED")


def run_status(api: Any, run_id: str) -> WorkflowStatus:
    """The status of a crew_durable run, or a clear error."""
    found = api.list_workflows(workflow_ids=[run_id], load_input=False, load_output=False)
    if not found:
        raise UnknownRunError(f"No run has the id {run_id!r}.")
    status: WorkflowStatus = found[0]
    if not status.attributes or ATTR_FORMAT not in status.attributes:
        raise UnknownRunError(
            f"Workflow {run_id!r} is not a crew_durable run (it is {status.name!r}): these operations "
            "act on the runs of DBOSCrew, DBOSAgent and DBOSFlow."
        )
    return status


def descendants(api: Any, run_id: str) -> list[WorkflowStatus]:
    """Every workflow started under ``run_id``, parents before their children."""
    found: list[WorkflowStatus] = []
    level = [run_id]
    while level:
        children = api.list_workflows(parent_workflow_id=level, load_input=False, load_output=False)
        found.extend(children)
        level = [child.workflow_id for child in children]
    return found


def cancel(api: Any, run_id: str) -> None:
    """Cancel the run and everything under it: each stops at its next step."""
    run_status(api, run_id)
    api.cancel_workflow(run_id, cancel_children=True)


def resume(api: Any, run_id: str) -> None:
    """Resume a cancelled (or stuck) run with the parts of it that were cancelled, in one go."""
    status = run_status(api, run_id)
    if status.status in ("SUCCESS", "ERROR"):
        raise CrewDurableError(f"Run {run_id!r} has ended ({status.status}); there is nothing to resume.")
    cancelled = [w.workflow_id for w in descendants(api, run_id) if w.status == "CANCELLED"]
    api.resume_workflows([*cancelled, run_id])


@dataclass(frozen=True)
class TaskRun:
    number: int
    """1-based, in the order the run started its tasks."""
    workflow_id: str
    step_id: int
    """The kickoff's step that started the task run."""


def task_runs(api: Any, run_id: str) -> list[TaskRun]:
    """The task runs a crew run started, in order."""
    seen: dict[str, int] = {}
    for step in api.list_workflow_steps(run_id):
        child = step["child_workflow_id"]
        if child and step["function_name"] in TASK_RUN_WORKFLOWS and child not in seen:
            seen[child] = step["function_id"]
    return [TaskRun(n, child, step) for n, (child, step) in enumerate(seen.items(), start=1)]


def fork(
    api: Any,
    run_id: str,
    task: int,
    step: int | None = None,
    *,
    application_version: str | None = None,
    queue_name: str | None = None,
) -> str:
    """Start a new run reusing everything ``run_id`` recorded before task ``task`` (or its step ``step``).

    ``step`` is a step id of that task's run, as ``crew-durable show``
    lists them. The fork runs under ``application_version`` (by default the
    latest one an application process registered, where workers run) and
    is enqueued on ``queue_name`` if given. Returns the new run's id.
    """
    status = run_status(api, run_id)
    if (status.attributes or {}).get(ATTR_KIND) != "crew":
        raise CrewDurableError(f"Run {run_id!r} is not a crew kickoff; fork takes a crew run and a task.")
    tasks = task_runs(api, run_id)
    if not 1 <= task <= len(tasks):
        started = f"tasks 1 to {len(tasks)}" if tasks else "no task"
        raise CrewDurableError(f"Run {run_id!r} started {started}; there is no task {task} to fork from.")
    target = tasks[task - 1]
    version = application_version or _latest_version(api) or status.app_version
    fork_id = str(uuid.uuid4())
    origin = {"run": run_id, "task": task, "step": step}
    if step is None:
        with SetWorkflowID(fork_id):
            api.fork_workflow(run_id, target.step_id, application_version=version, queue_name=queue_name)
        _mark(api, fork_id, fork_id, origin)
        return fork_id
    steps = [s["function_id"] for s in api.list_workflow_steps(target.workflow_id)]
    if not steps or not 1 <= step <= max(steps) + 1:
        last = max(steps) if steps else 0
        raise CrewDurableError(
            f"Task {task} of run {run_id!r} ({target.workflow_id}) has steps 1 to {last}; "
            f"step {step} is outside it."
        )
    task_fork = str(uuid.uuid4())
    # The task's fork starts as soon as it exists and reads which run it belongs to from
    # the attributes DBOS copies from the original: mark the (finished) original first.
    original_run = (status.attributes or {}).get(ATTR_RUN, run_id)
    _mark(api, target.workflow_id, fork_id, origin)
    try:
        with SetWorkflowID(task_fork):
            api.fork_workflow(target.workflow_id, step, application_version=version)
    finally:
        api.update_workflow_attributes(
            target.workflow_id, {ATTR_RUN: original_run, FORKED_FROM: None}, merge=True
        )
    with SetWorkflowID(fork_id):
        api.fork_workflow(
            run_id,
            target.step_id + 1,
            application_version=version,
            queue_name=queue_name,
            replacement_children={target.workflow_id: task_fork},
        )
    _mark(api, fork_id, fork_id, origin)
    return fork_id


def _mark(api: Any, workflow_id: str, run_id: str, origin: dict[str, Any]) -> None:
    """Make a workflow belong to the run ``run_id`` (a fork copies its original's attributes)."""
    api.update_workflow_attributes(workflow_id, {ATTR_RUN: run_id, FORKED_FROM: origin}, merge=True)


def _latest_version(api: Any) -> str | None:
    try:
        return str(api.get_latest_application_version().version_name)
    except Exception:  # no application registered a version yet
        return None
