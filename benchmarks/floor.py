"""Database round trips per completion step: crew_durable against a bare ``DBOS.run_step``.

    python -m benchmarks.floor [--rounds 5] [--backends sqlite,postgres] [--quick]

A SQLAlchemy event counter on DBOS's system-database engine counts, per step:
pool checkouts (each one a pre-ping round trip when ``pool_pre_ping`` is on,
DBOS's default), transactions (BEGIN and COMMIT, a round trip each on
Postgres) and statements. Per completion, the marginal count between a
durable task of 11 and of 1 completions (10 tool calls), with the run's event
writes on (as shipped) and off; per bare step, between bare DBOS workflows of
10 steps and of none.

Then the same bare steps timed under DBOS's public settings
(``db_engine_kwargs``), launched in turn, round after round:
DBOS's defaults, ``pool_pre_ping=False``, and a smaller pool; and, on
Postgres, what a server restart does to each: every connection of the
database is terminated (``pg_terminate_backend``, what a restart does to
the clients; the shared server itself is not restarted) and a workflow is
run at once: does it succeed, and how long does it take.

Prints tables and writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from benchmarks import _scale  # sets crewAI's quiet environment first  # isort: skip

import psycopg
from crewai import Task
from dbos import DBOS, WorkflowSerializationFormat

from benchmarks import overhead
from crew_durable import DBOSAgent, _stream
from tools.fake_openai import serve_in_process

RECORD = '{"result": {"kind": "text", "value": "' + "x" * 300 + '"}, "usage": {"prompt_tokens": 1}}'
floor_agent = DBOSAgent(agent_name="scale.floor", orig_agent=_scale.agent(max_iter=100))

CONFIGS: dict[str, dict[str, Any]] = {
    "DBOS defaults (pool 20, pre-ping)": {},
    "pool_pre_ping=False": {"db_engine_kwargs": {"pool_pre_ping": False}},
    "pool 5, pre-ping": {"sys_db_pool_size": 5},
}


@DBOS.workflow(name="scale.bare_steps", serialization_type=WorkflowSerializationFormat.PORTABLE)
def bare_steps(count: int) -> int:
    for _ in range(count):
        DBOS.run_step({"name": "scale.bare_step"}, _record)
    return count


def _record() -> str:
    return RECORD


def _counted(counter: _scale.StatementCounter, run: Callable[[], Any]) -> dict[str, int]:
    before = counter.snapshot()
    run()
    after = counter.snapshot()
    return {k: after[k] - before[k] for k in after}


def _per(high: dict[str, int], low: dict[str, int], n: int) -> dict[str, float]:
    return {k: (high[k] - low[k]) / n for k in high}


def _durable_task(completions: int) -> Callable[[], Any]:
    task = Task(description=f"Look up {completions} keys.", expected_output="done", agent=floor_agent)
    return lambda: floor_agent.execute_task(task)


def _without_events(run: Callable[[], Any]) -> Callable[[], Any]:
    def quiet() -> Any:
        write = _stream.write_to_run_stream
        _stream.write_to_run_stream = lambda *args, **kwargs: None  # type: ignore[assignment]
        try:
            return run()
        finally:
            _stream.write_to_run_stream = write

    return quiet


def round_trips(backend: str) -> dict[str, Any]:
    """Per step: checkouts, transactions and statements, bare and crew_durable."""
    url, drop = _scale.database(backend)
    try:
        with _scale.launched(url):
            counter = _scale.StatementCounter(_scale.system_engine())
            for run in (_durable_task(2), lambda: bare_steps(1)):  # warm up
                run()
            bare = _per(
                _counted(counter, lambda: bare_steps(10)), _counted(counter, lambda: bare_steps(0)), 10
            )
            durable = _per(_counted(counter, _durable_task(11)), _counted(counter, _durable_task(1)), 10)
            quiet = _per(
                _counted(counter, _without_events(_durable_task(11))),
                _counted(counter, _without_events(_durable_task(1))),
                10,
            )
            counter.keep = True
            bare_steps(1)
            counter.statements.clear()
            bare_steps(2)
            one_bare = list(counter.statements)
            counter.statements.clear()
            counter.keep = False
            counter.close()
    finally:
        drop()
    pre_ping = 1 if backend == "postgres" else 0
    for row in (bare, durable, quiet):
        # On Postgres each transaction is BEGIN + statements + COMMIT, and each checkout a ping.
        row["round_trips"] = row["statements"] + (
            2 * row["commits"] + pre_ping * row["checkouts"] if backend == "postgres" else 0
        )
    return {
        "backend": backend,
        "bare_step": bare,
        "durable_completion": durable,
        "durable_completion_no_events": quiet,
        "bare_workflow_statements_one_step_more": one_bare,
    }


def _time_bare(steps: int) -> float:
    started = time.perf_counter()
    bare_steps(steps)
    return (time.perf_counter() - started) * 1000 / steps


def _terminate_connections(url: str) -> int:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(f"{overhead.POSTGRES_SERVER}/postgres", autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return len(rows)


def configs(backend: str, rounds: int, steps: int) -> dict[str, Any]:
    """ms per bare step under each config, alternating configs round by round; and a 'restart'."""
    url, drop = _scale.database(backend)
    timings: dict[str, list[float]] = {name: [] for name in CONFIGS}
    restart: dict[str, dict[str, Any]] = {}
    try:
        for round_number in range(rounds):
            names = list(CONFIGS)
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                with _scale.launched(url, **CONFIGS[name]):
                    _time_bare(5)  # warm the pool
                    timings[name].append(_time_bare(steps))
                    if backend == "postgres" and round_number == 0:
                        killed = _terminate_connections(url)
                        started = time.perf_counter()
                        try:
                            bare_steps(3)
                            outcome = "succeeded"
                        except Exception as error:  # reported, not raised
                            outcome = f"failed: {type(error).__name__}"
                        restart[name] = {
                            "connections_terminated": killed,
                            "outcome": outcome,
                            "seconds": time.perf_counter() - started,
                        }
    finally:
        drop()
    return {
        "backend": backend,
        "rounds": rounds,
        "steps": steps,
        "ms_per_step": {name: statistics.median(values) for name, values in timings.items()},
        "ms_per_step_all": timings,
        "after_connections_terminated": restart,
    }


def report(counts: list[dict[str, Any]], timed: list[dict[str, Any]]) -> dict[str, str]:
    headers = ["backend", "per step", "checkouts", "transactions", "statements", "round trips"]
    rows = []
    for c in counts:
        for label, key in (
            ("bare DBOS.run_step", "bare_step"),
            ("crew_durable completion, events off", "durable_completion_no_events"),
            ("crew_durable completion, as shipped (3 events)", "durable_completion"),
        ):
            r = c[key]
            rows.append(
                [
                    c["backend"],
                    label,
                    f"{r['checkouts']:.1f}",
                    f"{r['commits']:.1f}",
                    f"{r['statements']:.1f}",
                    f"{r['round_trips']:.1f}",
                ]
            )
    _scale.print_table(
        "Round trips per step (Postgres: a ping per checkout, BEGIN and COMMIT per transaction)",
        headers,
        rows,
    )
    cheaders = ["backend", "config", "ms per bare step (median)", "all connections dropped: next workflow"]
    crows = []
    for t in timed:
        for name, ms in t["ms_per_step"].items():
            after = t["after_connections_terminated"].get(name)
            crows.append(
                [
                    t["backend"],
                    name,
                    f"{ms:.2f}",
                    f"{after['outcome']} in {after['seconds'] * 1000:.0f} ms" if after else "-",
                ]
            )
    _scale.print_table("DBOS's public settings", cheaders, crows)
    return {
        "round_trips": _scale.markdown_table(headers, rows),
        "configs": _scale.markdown_table(cheaders, crows),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else args.rounds
    print(f"Floor: statements per step, and DBOS's settings ({rounds} rounds, {args.backends})...")
    backends = args.backends.split(",")
    with overhead._quiet(), serve_in_process(_scale.task_brain, _scale.PORT):
        counts = [round_trips(b) for b in backends]
        timed = [configs(b, rounds, args.steps) for b in backends]
    tables = report(counts, timed)
    out = _scale.write("floor", {"round_trips": counts, "configs": timed, "tables": tables})
    print(f"\nWritten to {out}")
    return {"round_trips": counts, "configs": timed, "tables": tables}


if __name__ == "__main__":
    main()
