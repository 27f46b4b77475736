"""``crew-durable``: see, answer and steer durable runs, and run workers, from a shell.

Every command reads the system database given by ``--db`` (default
``$DBOS_SYSTEM_DATABASE_URL``) through ``CrewClient``; none imports crew
code, except ``worker``, which is where crew code runs. Listings print
tables; ``--json`` prints JSON instead (``stream --json``: one event per
line).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from crew_durable._client import CrewClient
from crew_durable._errors import CrewDurableError
from crew_durable._inspect import RunTree

app = typer.Typer(
    name="crew-durable",
    help="See, answer and steer durable crewAI runs; run workers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _out() -> Console:
    """A console on stdout, sized when the command runs (not when the module was imported)."""
    return Console()


def _err() -> Console:
    return Console(stderr=True, soft_wrap=True)  # a message is one line, whatever the width


Db = Annotated[
    str | None,
    typer.Option(
        "--db", help="The DBOS system database URL (default: $DBOS_SYSTEM_DATABASE_URL).", show_default=False
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@contextmanager
def _client(db: str | None) -> Iterator[CrewClient]:
    try:
        with CrewClient(db or os.environ.get("DBOS_SYSTEM_DATABASE_URL")) as client:
            yield client
    except CrewDurableError as error:
        _err().print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(1) from None


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, default=str, ensure_ascii=False) + "\n")


def _when(epoch: float) -> str:
    return time.strftime("%m-%d %H:%M:%S", time.localtime(epoch))


def _since(text: str | None) -> float | None:
    """``30m``, ``2h``, ``1d`` ago, or an ISO date and time."""
    if text is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return time.time() - float(text[:-1]) * units[text[-1]]
    from datetime import datetime

    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise typer.BadParameter(f"{text!r} is neither a duration (30m, 2h, 1d) nor an ISO time.") from None


# -- reading ------------------------------------------------------------------------


@app.command()
def runs(
    db: Db = None,
    status: Annotated[
        list[str] | None, typer.Option(help="PENDING, SUCCESS, ERROR, CANCELLED, ENQUEUED...")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Only runs of this crew, agent or flow.")] = None,
    since: Annotated[str | None, typer.Option(help="Started after: 30m, 2h, 1d ago, or an ISO time.")] = None,
    until: Annotated[str | None, typer.Option(help="Started before: a duration ago, or an ISO time.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: AsJson = False,
) -> None:
    """List runs: status, tasks done/total, LLM calls, tokens, duration."""
    with _client(db) as client:
        found = client.runs(
            status=[s.upper() for s in status] if status else None,
            name=name,
            since=_since(since),
            until=_since(until),
            limit=limit,
        )
    if as_json:
        _print_json([run.to_json() for run in found])
        return
    table = Table(title=f"{len(found)} runs", title_justify="left")
    for column in ("run", "kind", "name", "status", "tasks", "LLM calls", "tokens", "duration", "started"):
        table.add_column(
            column, justify="right" if column in ("tasks", "LLM calls", "tokens", "duration") else "left"
        )
    for run in found:
        total = "?" if run.tasks_total is None else str(run.tasks_total)
        status_text = f"{run.status} (waiting)" if run.waiting else run.status
        if run.forked_from:
            status_text += " (fork)"  # of which run: show, or --json
        table.add_row(
            Text(run.run_id, overflow="fold"),
            run.kind,
            run.name,
            status_text,
            f"{run.tasks_done}/{total}",
            str(run.llm_calls),
            f"{run.tokens:,}",
            f"{run.seconds:.1f} s",
            _when(run.created_at),
        )
    _out().print(table)


@app.command()
def show(run_id: str, db: Db = None, as_json: AsJson = False) -> None:
    """A run as a tree: tasks, their completions (tokens, time), tool calls, questions, child runs."""
    with _client(db) as client:
        found = client.show(run_id)
    if as_json:
        _print_json(found.to_json())
        return
    _out().print(_render(found))


def _render(node: RunTree, tree: Tree | None = None) -> Tree:
    label = f"[bold]{node.kind} {node.name}[/bold] {node.workflow_id} [cyan]{node.status}[/cyan] {node.seconds:.1f} s"
    if node.task:
        label += f" - {node.task}"
    branch = Tree(label) if tree is None else tree.add(label)
    if node.waiting_for:
        branch.add(f"[yellow]waiting for {node.waiting_for}[/yellow]")
    if node.error:
        branch.add(f"[red]error: {node.error}[/red]")
    for step in node.steps:
        if step.child is not None:
            _render(step.child, branch)
            continue
        seconds = f" {step.seconds:.2f} s" if step.seconds is not None else ""
        tokens = f" {step.tokens} tokens" if step.tokens else ""
        text = f"{step.step_id:>3} {step.kind:<10} {step.name}{seconds}{tokens}"
        if step.detail:
            text += f"  {step.detail}"
        if step.error:
            text += f"  [red]{step.error}[/red]"
        branch.add(text, highlight=False)
    return branch


@app.command()
def stream(
    run_id: str,
    db: Db = None,
    offset: Annotated[int, typer.Option(help="Start at this event offset.")] = 0,
    as_json: AsJson = False,
) -> None:
    """Follow a run's events live, from an offset; ends when the run ends."""
    out = _out()
    with _client(db) as client:
        for event in client.stream(run_id, offset):
            if as_json:
                _print_json(event.to_json())
                sys.stdout.flush()
            elif event.kind == "token":
                out.print(event.text or "", end="", highlight=False, markup=False)
            else:
                who = f" {event.agent}" if event.agent else ""
                text = f" {' '.join((event.text or '').split())[:100]}" if event.text else ""
                out.print(
                    f"\n[dim]{event.offset:>5}[/dim] [bold]{event.kind}[/bold]{who}{text}", highlight=False
                )


# -- people -------------------------------------------------------------------------


@app.command()
def inbox(
    db: Db = None,
    run: Annotated[str | None, typer.Option(help="Only this run's requests.")] = None,
    as_json: AsJson = False,
) -> None:
    """The open requests: approvals and reviews waiting for a person, newest first."""
    with _client(db) as client:
        requests = client.pending_input(run)
    if as_json:
        _print_json([request.to_json() for request in requests])
        return
    table = Table(title=f"{len(requests)} open requests", title_justify="left")
    widest = max((len(request.request_id) for request in requests), default=7)
    table.add_column("request", overflow="fold", min_width=widest)
    for column in ("kind", "agent", "task", "asks", "asked"):
        table.add_column(column)
    for request in requests:
        table.add_row(
            Text(request.request_id, overflow="fold"),
            request.kind,
            request.agent,
            request.task or "",
            request.message if len(request.message) <= 80 else request.message[:79] + "…",
            _when(request.asked_at),
        )
    _out().print(table)


@app.command()
def feedback(request_id: str, text: str, db: Db = None) -> None:
    """Answer a review: a text makes the agent revise and ask again; "" accepts."""
    with _client(db) as client:
        client.send_feedback(request_id, text)
    _out().print(f"Sent to {request_id}.")


@app.command()
def approve(request_id: str, db: Db = None) -> None:
    """Approve a tool call: it runs, once."""
    with _client(db) as client:
        client.approve(request_id)
    _out().print(f"Approved {request_id}.")


@app.command()
def deny(
    request_id: str,
    reason: Annotated[str, typer.Option(help="Why: the model receives it as the tool's result.")],
    db: Db = None,
) -> None:
    """Deny a tool call: it does not run, and the model is told the reason."""
    with _client(db) as client:
        client.deny(request_id, reason=reason)
    _out().print(f"Denied {request_id}.")


# -- steering -----------------------------------------------------------------------


@app.command()
def cancel(run_id: str, db: Db = None) -> None:
    """Cancel a run, its running task included: it stops at its next step."""
    with _client(db) as client:
        client.cancel(run_id)
    _out().print(f"Cancelled {run_id}.")


@app.command()
def resume(run_id: str, db: Db = None) -> None:
    """Resume a cancelled run where it stopped (its cancelled tasks too)."""
    with _client(db) as client:
        client.resume(run_id)
    _out().print(f"Resumed {run_id}.")


@app.command()
def fork(
    run_id: str,
    task: Annotated[int, typer.Option(help="Run again from this task (1 is the first).")],
    step: Annotated[
        int | None, typer.Option(help="Inside the task, from this step id (as `show` lists).")
    ] = None,
    queue: Annotated[
        str | None, typer.Option(help="Enqueue the fork on this queue (for its workers).")
    ] = None,
    app_version: Annotated[str | None, typer.Option(help="Run it under this application version.")] = None,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """Start a new run that reuses everything recorded before a task (or a step of it)."""
    with _client(db) as client:
        handle = client.fork(run_id, task=task, step=step, queue_name=queue, application_version=app_version)
    if as_json:
        _print_json({"run_id": handle.workflow_id, "forked_from": run_id, "task": task, "step": step})
    else:
        _out().print(handle.workflow_id)


@app.command()
def enqueue(
    crew: str,
    queue: Annotated[str, typer.Option(help="The DBOS queue its workers consume.")],
    inputs: Annotated[str, typer.Option(help="The kickoff inputs, as a JSON object.")] = "{}",
    run_id: Annotated[str | None, typer.Option(help="The run's id (an existing id gives that run).")] = None,
    flow: Annotated[bool, typer.Option("--flow", help="CREW names a DBOSFlow, not a DBOSCrew.")] = False,
    db: Db = None,
) -> None:
    """Put a kickoff of a crew (or, with --flow, of a flow) on a queue; prints the run id."""
    try:
        parsed = json.loads(inputs)
    except ValueError as error:
        raise typer.BadParameter(f"--inputs is not JSON: {error}") from None
    with _client(db) as client:
        start = client.enqueue_flow if flow else client.enqueue
        handle = start(crew, parsed, queue_name=queue, run_id=run_id)
    _out().print(handle.workflow_id)


@app.command()
def worker(
    target: Annotated[
        str, typer.Argument(help="MODULE or MODULE:ATTR (a DBOS config, or a function returning one).")
    ],
    queue: Annotated[list[str], typer.Option(help="A queue to consume (repeat for several).")],
    concurrency: Annotated[
        int | None, typer.Option(help="Runs of each queue this worker runs at once.")
    ] = None,
    global_concurrency: Annotated[
        int | None, typer.Option(help="Runs of each queue all workers run at once.")
    ] = None,
    rate: Annotated[
        str | None, typer.Option(help="At most LIMIT runs start per PERIOD seconds: LIMIT/PERIOD.")
    ] = None,
    executor_id: Annotated[
        str | None, typer.Option(help="This worker's id (default: <host>-<free slot>).")
    ] = None,
    app_version: Annotated[str | None, typer.Option(help="The application version to run under.")] = None,
    grace: Annotated[int, typer.Option(help="On SIGTERM, seconds running runs get to finish.")] = 30,
    db: Db = None,
) -> None:
    """Run the crews of MODULE from DBOS queues until SIGTERM."""
    from crew_durable._worker import WorkerSettings, run_worker

    limit: tuple[int, float] | None = None
    if rate is not None:
        try:
            count, period = rate.split("/", 1)
            limit = (int(count), float(period))
        except ValueError:
            raise typer.BadParameter(f"--rate takes LIMIT/PERIOD, as 50/60; got {rate!r}.") from None
    settings = WorkerSettings(
        target=target,
        queues=queue,
        concurrency=concurrency,
        global_concurrency=global_concurrency,
        rate=limit,
        executor_id=executor_id,
        database_url=db or os.environ.get("DBOS_SYSTEM_DATABASE_URL"),
        application_version=app_version,
        grace_seconds=grace,
    )
    try:
        run_worker(settings)
    except CrewDurableError as error:
        _err().print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(1) from None


def main() -> None:
    app()
