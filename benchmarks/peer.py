"""The peer comparison: the same crew as plain crewAI, with crewAI's checkpointing, and durable.

    python -m benchmarks.peer [--rounds 20] [--backends sqlite,postgres] [--quick]

A two-task crew, 3 completions per task (2 tool calls each), against the
local fake model answering at once (the worst case for any overhead). In
one process, per backend, rounds alternate:

- plain:      crewAI's ``Crew.kickoff``;
- checkpoint: the same crew with crewAI's own checkpointing,
              ``checkpoint=CheckpointConfig(on_events=["*"],
              provider=JsonProvider())`` from ``crewai.state``: a checkpoint
              (the crew's whole runtime state, as a JSON file) on every event
              crewAI checkpoints a crew on. In crewAI 1.15.30, asked for
              ``["llm_call_completed", "tool_usage_finished"]`` it writes
              none (those events come from the LLM and from the agent's
              executor, which it does not lead back to the crew); its
              ``SqliteProvider`` needs SQLite's ``jsonb`` (3.45+), which this
              machine's Python lacks; and a ``@tool`` function cannot be
              serialized in a checkpoint, so every variant's tool is a
              ``BaseTool`` subclass;
- durable:    the same crew as a ``DBOSCrew`` on that backend's system database.

Wall time is the median per variant and its ratio to plain crewAI's, paired
round by round. Bytes stored per completion: the system database's table
growth for durable, the checkpoint database's growth for crewAI's
checkpoints (each checkpoint is the crew's whole runtime state), over one
run, divided by its completions.

Prints a table and writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import _scale, overhead  # sets crewAI's quiet environment first  # isort: skip

from crewai import Agent, Crew, Task
from crewai.events.event_bus import crewai_event_bus
from crewai.state import CheckpointConfig, JsonProvider
from crewai.tools import BaseTool

from crew_durable import DBOSCrew
from tools.fake_openai import serve_in_process

TASKS, COMPLETIONS = 2, 3
CHECKPOINTS = Path(tempfile.mkdtemp(prefix="crew-durable-peer-"))


class Lookup(BaseTool):
    name: str = "lookup"
    description: str = "Look a key up (no side effect, no step)."

    def _run(self, key: int) -> str:
        return f"value-{key}:" + "x" * _scale.RESULT_CHARS


def _crew(label: str, **settings: Any) -> Crew:
    agents = [
        Agent(
            role=f"{label} looker {n}",
            goal="Look keys up",
            backstory="Fast.",
            tools=[Lookup()],
            llm=_scale.llm(),
        )
        for n in range(TASKS)
    ]
    tasks = [
        Task(description=f"Task {n}: look up {COMPLETIONS} keys.", expected_output="done", agent=a)
        for n, a in enumerate(agents)
    ]
    return Crew(agents=agents, tasks=tasks, **settings)


plain = _crew("Plain")
checkpointed = _crew(
    "Checkpointed",
    checkpoint=CheckpointConfig(
        location=str(CHECKPOINTS),
        on_events=["*"],
        provider=JsonProvider(),
    ),
)
durable = DBOSCrew(crew_name="scale.peer", orig_crew=_crew("Durable"))


def _checkpoint_bytes() -> tuple[int, int]:
    """The checkpoint files' bytes, and how many there are."""
    files = [path for path in CHECKPOINTS.rglob("*") if path.is_file()]
    return sum(path.stat().st_size for path in files), len(files)


def _checkpointed_kickoff() -> Any:
    # A checkpointed crew that finished resumes after its last task: each run starts afresh.
    checkpointed.checkpoint_kickoff_event_id = None
    for task in checkpointed.tasks:
        task.output = None
    output = checkpointed.kickoff(inputs={})
    crewai_event_bus.flush()  # checkpoints are written by the event bus's pool: count them in
    return output


def measure(backend: str, rounds: int) -> dict[str, Any]:
    url, drop = _scale.database(backend)
    runs: dict[str, Callable[[], Any]] = {
        "plain": lambda: plain.kickoff(inputs={}),
        "checkpoint": _checkpointed_kickoff,
        "durable": lambda: durable.kickoff(inputs={}),
    }
    try:
        with _scale.launched(url):
            for run in runs.values():
                run()  # warm up
            timings, _ = overhead.alternating(runs, rounds)
            before = sum(_scale.payload_bytes(url).values())
            durable.kickoff(inputs={})
            durable_bytes = sum(_scale.payload_bytes(url).values()) - before
            (cp_before, rows_before) = _checkpoint_bytes()
            _checkpointed_kickoff()
            (cp_after, rows_after) = _checkpoint_bytes()
    finally:
        drop()
    completions = TASKS * COMPLETIONS
    return {
        "backend": backend,
        "rounds": rounds,
        "completions_per_run": completions,
        "median_ms": {name: statistics.median(values) for name, values in timings.items()},
        "ratio_to_plain": {
            name: statistics.median(a / b for a, b in zip(values, timings["plain"], strict=True))
            for name, values in timings.items()
        },
        "ms_per_completion_over_plain": {
            name: overhead._paired_median(values, timings["plain"]) / completions
            for name, values in timings.items()
        },
        "bytes_per_completion": {
            "durable": durable_bytes / completions,
            "checkpoint": (cp_after - cp_before) / completions,
        },
        "checkpoints_per_run": rows_after - rows_before,
        "timings_ms": timings,
    }


def report(results: list[dict[str, Any]]) -> str:
    headers = [
        "variant",
        "store",
        "run (median)",
        "ratio to plain crewAI",
        "added per completion",
        "bytes stored per completion",
    ]
    rows: list[list[Any]] = []
    for r in results:
        m, ratio, added = r["median_ms"], r["ratio_to_plain"], r["ms_per_completion_over_plain"]
        if not rows:
            rows.append(["plain crewAI", "-", f"{m['plain']:.0f} ms", "1.00", "-", "0"])
            rows.append(
                [
                    "crewAI CheckpointConfig (every event it takes)",
                    "JSON files",
                    f"{m['checkpoint']:.0f} ms",
                    f"{ratio['checkpoint']:.2f}",
                    f"{added['checkpoint']:.1f} ms",
                    f"{r['bytes_per_completion']['checkpoint'] / 1024:.1f} kB "
                    f"({r['checkpoints_per_run']} per run)",
                ]
            )
        rows.append(
            [
                "crew_durable",
                r["backend"],
                f"{m['durable']:.0f} ms",
                f"{ratio['durable']:.2f}",
                f"{added['durable']:.1f} ms",
                f"{r['bytes_per_completion']['durable'] / 1024:.1f} kB",
            ]
        )
    _scale.print_table(
        f"The same crew ({TASKS} tasks x {COMPLETIONS} completions, model answering at once; medians, "
        f"{results[0]['rounds']} alternating rounds)",
        headers,
        rows,
    )
    return _scale.markdown_table(headers, rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--quick", action="store_true", help="8 rounds")
    args = parser.parse_args(argv)
    rounds = 8 if args.quick else args.rounds
    print(
        f"Peer comparison, {rounds} alternating rounds ({args.backends}); crewAI's console output is muted..."
    )
    with overhead._quiet(), serve_in_process(_scale.task_brain, _scale.PORT):
        results = [measure(b, rounds) for b in args.backends.split(",")]
    table = report(results)
    out = _scale.write("peer", {"results": results, "table": table})
    print(f"\nWritten to {out}")
    return {"results": results, "table": table}


if __name__ == "__main__":
    main()
