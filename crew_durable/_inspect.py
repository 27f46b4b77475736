"""What an operator reads about runs: summaries for listings, and a run's tree of tasks and steps.

Read from the system database alone (DBOS's workflow records, their steps,
attributes and the run's event stream), so no crew code is needed. Tokens
and LLM calls come from what the runs recorded: a finished task run's
output sums its completions and its children's; a task still running is
read step by step.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from dbos import DBOSClient, WorkflowStatus

from crew_durable._protocol import (
    ATTR_FORMAT,
    ATTR_KIND,
    ATTR_NAME,
    ATTR_REQUEST,
    ATTR_RUN,
    ATTR_TASK,
    ATTR_TASKS,
    ATTR_WAITING,
    FORKED_FROM,
    STREAM_KEY,
    TASK_RUN_WORKFLOWS,
)

RUN_WORKFLOWS = (
    "crew_durable.crew_kickoff",
    "crew_durable.crew_kickoff_async",
    "crew_durable.crew_kickoff_for_each",
    "crew_durable.crew_kickoff_for_each_async",
    "crew_durable.agent_run",
    "crew_durable.agent_run_async",
    "crew_durable.agent_kickoff",
    "crew_durable.agent_kickoff_async",
    "crew_durable.flow_kickoff",
)
"""The workflows that can be a run of their own (the root of a run's tree)."""
HIDDEN_STEPS = frozenset({"crew_durable.stream_event", "DBOS.getResult"})
"""Bookkeeping operations a tree does not show."""
COMPLETION_SUFFIXES = (".llm", ".function_calling_llm", ".planning_llm")
SHORT = 60


@dataclass
class RunSummary:
    run_id: str
    kind: str
    name: str
    status: str
    tasks_done: int
    tasks_total: int | None
    llm_calls: int
    tokens: int
    seconds: float
    created_at: float
    waiting: bool = False
    forked_from: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StepView:
    step_id: int
    name: str
    kind: str
    """``completion``, ``tool``, ``question``, ``run`` (a child run) or ``step``."""
    seconds: float | None
    tokens: int | None = None
    detail: str = ""
    error: str | None = None
    child: RunTree | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["child"] = self.child.to_json() if self.child else None
        return data


@dataclass
class RunTree:
    workflow_id: str
    kind: str
    name: str
    status: str
    task: str | None
    seconds: float
    steps: list[StepView] = field(default_factory=list)
    waiting_for: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in asdict(self).items() if k != "steps"},
            "steps": [s.to_json() for s in self.steps],
        }


def is_ours(status: WorkflowStatus) -> bool:
    return bool(status.attributes) and ATTR_FORMAT in (status.attributes or {})


def is_root(status: WorkflowStatus) -> bool:
    return (
        is_ours(status) and (status.attributes or {}).get(ATTR_RUN, status.workflow_id) == status.workflow_id
    )


def runs(
    client: DBOSClient,
    *,
    status: str | list[str] | None = None,
    name: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int | None = 50,
) -> list[RunSummary]:
    """The root runs (crew kickoffs, agent kickoffs and runs, flows), newest first."""
    found = client.list_workflows(
        status=status,
        name=list(RUN_WORKFLOWS),
        start_time=_iso(since),
        end_time=_iso(until),
        sort_desc=True,
        load_input=False,
        load_output=True,
    )
    roots = [s for s in found if is_root(s) and (name is None or (s.attributes or {}).get(ATTR_NAME) == name)]
    return [summary(client, s) for s in (roots if limit is None else roots[:limit])]


def summary(client: DBOSClient, status: WorkflowStatus) -> RunSummary:
    attributes = status.attributes or {}
    children = client.list_workflows(
        parent_workflow_id=status.workflow_id, load_input=False, load_output=True
    )
    # A fork's first tasks are the original's, replayed: count the task runs its steps started.
    started = {
        step["child_workflow_id"]
        for step in client.list_workflow_steps(status.workflow_id)
        if step["child_workflow_id"] and step["function_name"] in TASK_RUN_WORKFLOWS
    }
    finished = (
        client.list_workflows(
            workflow_ids=sorted(started), status="SUCCESS", load_input=False, load_output=False
        )
        if started
        else []
    )
    usage = _tree_usage(client, status, children)
    return RunSummary(
        run_id=status.workflow_id,
        kind=str(attributes.get(ATTR_KIND, "?")),
        name=str(attributes.get(ATTR_NAME, status.name)),
        status=status.status,
        tasks_done=len(finished),
        tasks_total=attributes.get(ATTR_TASKS),
        llm_calls=usage["successful_requests"],
        tokens=usage["total_tokens"],
        seconds=_seconds(status),
        created_at=(status.created_at or 0) / 1000,
        waiting=any((c.attributes or {}).get(ATTR_WAITING) for c in children),
        forked_from=(attributes.get(FORKED_FROM) or {}).get("run"),
    )


def _tree_usage(client: DBOSClient, status: WorkflowStatus, children: list[WorkflowStatus]) -> dict[str, int]:
    """LLM calls and tokens a run recorded: its own completions and its children's."""
    own = _usage_of_output(status.output)
    if own is not None:
        return own
    total = {"successful_requests": 0, "total_tokens": 0}
    for step in client.list_workflow_steps(status.workflow_id):
        if step["function_name"].endswith(COMPLETION_SUFFIXES):
            _add(total, _usage_of_step(step["output"]))
    for child in children:
        grandchildren = client.list_workflows(
            parent_workflow_id=child.workflow_id, load_input=False, load_output=True
        )
        _add(total, _tree_usage(client, child, grandchildren))
    return total


def _usage_of_output(output: Any) -> dict[str, int] | None:
    """The usage a finished run's output records (a crew's token_usage, an agent run's total)."""
    if not isinstance(output, dict):
        return None
    usage = (
        output.get("token_usage") or (output.get("usage") or {}).get("total") or output.get("usage_metrics")
    )
    if not isinstance(usage, dict):
        return None
    return {
        "successful_requests": int(usage.get("successful_requests", 0)),
        "total_tokens": int(usage.get("total_tokens", 0)),
    }


def _usage_of_step(output: Any) -> dict[str, int]:
    record = _json(output)
    usage = record.get("usage") if isinstance(record, dict) else None
    if not isinstance(usage, dict):
        return {"successful_requests": 0, "total_tokens": 0}
    return {
        "successful_requests": int(usage.get("successful_requests", 1) or 1),
        "total_tokens": int(usage.get("total_tokens", 0)),
    }


def _add(into: dict[str, int], usage: dict[str, int]) -> None:
    for key, value in usage.items():
        into[key] = into.get(key, 0) + value


def tree(client: DBOSClient, run_id: str) -> RunTree | None:
    """A run and everything under it: tasks, their completions, tools, questions and child runs."""
    found = client.list_workflows(workflow_ids=[run_id], load_input=False, load_output=False)
    if not found:
        return None
    tool_calls = _tool_calls(client, run_id)
    return _tree(client, found[0], tool_calls)


def _tree(client: DBOSClient, status: WorkflowStatus, tool_calls: dict[str, list[dict[str, Any]]]) -> RunTree:
    attributes = status.attributes or {}
    task = attributes.get(ATTR_TASK)
    request = attributes.get(ATTR_REQUEST) if attributes.get(ATTR_WAITING) else None
    node = RunTree(
        workflow_id=status.workflow_id,
        kind=str(attributes.get(ATTR_KIND, "workflow")),
        name=str(attributes.get(ATTR_NAME, status.name)),
        status=status.status,
        task=task.get("name") if isinstance(task, dict) else None,
        seconds=_seconds(status),
        waiting_for=f"{request['kind']}: {_short(request['message'])} ({request['request_id']})"
        if request
        else None,
        error=_short(str(status.error)) if status.error else None,
    )
    calls = list(tool_calls.get(status.workflow_id, []))
    seen_children: set[str] = set()
    children = {
        c.workflow_id: c
        for c in client.list_workflows(
            parent_workflow_id=status.workflow_id, load_input=False, load_output=False
        )
    }
    for step in client.list_workflow_steps(status.workflow_id):
        name = step["function_name"]
        if name in HIDDEN_STEPS:
            continue
        child_id = step["child_workflow_id"]
        if child_id:
            if child_id in seen_children or child_id not in children:
                continue
            seen_children.add(child_id)
        node.steps.append(_step(client, step, children.get(child_id or ""), calls, tool_calls))
    return node


def _step(
    client: DBOSClient,
    step: Any,
    child: WorkflowStatus | None,
    calls: list[dict[str, Any]],
    tool_calls: dict[str, list[dict[str, Any]]],
) -> StepView:
    name = step["function_name"]
    started, completed = step["started_at_epoch_ms"], step["completed_at_epoch_ms"]
    seconds = (completed - started) / 1000 if started and completed else None
    error = _short(str(step["error"])) if step["error"] is not None else None
    view = StepView(step_id=step["function_id"], name=name, kind="step", seconds=seconds, error=error)
    if child is not None:
        view.kind, view.child = "run", _tree(client, child, tool_calls)
        return view
    record = _json(step["output"])
    if name.endswith(COMPLETION_SUFFIXES):
        view.kind = "completion"
        view.tokens = _usage_of_step(step["output"])["total_tokens"]
        result = record.get("result", {}) if isinstance(record, dict) else {}
        view.detail = _completion_text(result)
    elif ".input." in name:
        view.kind = "question"
        view.detail = _short(str(record.get("message", ""))) if isinstance(record, dict) else ""
    elif name.startswith("DBOS."):
        view.detail = _short(json.dumps(record, default=str)) if record is not None else ""
    else:
        view.kind = "tool"
        tool = name.rsplit(".tool.", 1)[-1]
        arguments = next((c for c in calls if c["tool"] == tool), None)
        if arguments is not None:
            calls.remove(arguments)
        value = record.get("value", record) if isinstance(record, dict) else record
        shown_args = _short(json.dumps(arguments["arguments"], default=str)) if arguments else ""
        view.detail = f"{tool}({shown_args}) -> {_short(str(value))}"
    return view


def _completion_text(result: dict[str, Any]) -> str:
    if result.get("kind") == "tool_calls":
        calls = [c.get("function", c) for c in result.get("value", [])]
        return "calls " + ", ".join(
            f"{c.get('name')}({_short(str(c.get('arguments', '')), 30)})" for c in calls
        )
    return _short(str(result.get("value", "")))


def _tool_calls(client: DBOSClient, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """The arguments of each tool call, per workflow, in order, from the run's stream."""
    calls: dict[str, list[dict[str, Any]]] = {}
    try:
        for value in client.read_stream(run_id, STREAM_KEY, timeout_seconds=0):
            if isinstance(value, dict) and value.get("kind") == "tool_started":
                data = value.get("data") or {}
                calls.setdefault(str(value.get("workflow_id")), []).append(
                    {"tool": data.get("tool"), "arguments": data.get("arguments")}
                )
    except Exception:  # a pending run's stream has nothing more for now
        pass
    return calls


def _json(output: Any) -> Any:
    if isinstance(output, str):
        try:
            return json.loads(output)
        except ValueError:
            return output
    return output


def _short(text: str, width: int = SHORT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _seconds(status: WorkflowStatus) -> float:
    created = (status.created_at or 0) / 1000
    ended = (status.completed_at or 0) / 1000 if status.completed_at else time.time()
    return max(0.0, ended - created)


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"
