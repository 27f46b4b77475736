"""What a run's event stream costs a run nobody watches.

    python -m benchmarks.streaming [--rounds 60] [--completions 10] [--backends sqlite,postgres]

Every durable run writes its events (task and tool start and finish, each
finished completion) to its DBOS stream, and the tokens of streaming LLMs.
This alternates, round after round in one process, the same durable task
of N completions (N-1 tool calls) against a local fake model answering at
once, with its event writes on (as shipped) and off (the writes replaced by
nothing), and with a streaming LLM (tokens written too). The cost per
completion is the paired median difference divided by N; against a model
that answers at once it is the whole cost, and the table also gives it as
a share of a run whose model takes 1 s per completion.

Prints a table and writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks import overhead  # sets crewAI's quiet environment first  # isort: skip

from crewai import LLM, Task
from dbos import DBOS

from crew_durable import DBOSAgent, _stream, dbos_config
from tools.fake_openai import serve_in_process

streaming_llm = LLM(
    model="gpt-4o-mini",
    base_url=f"http://127.0.0.1:{overhead.FAKE_PORT}/v1",
    api_key="sk-benchmark",
    stream=True,
)
streamer = DBOSAgent(agent_name="benchmark.streamer", orig_agent=overhead._agent(streaming_llm))
MODEL_SECONDS = 1.0
"""A model's time per completion, to put the cost in proportion."""


def measure(backend: str, rounds: int, completions: int) -> dict[str, Any]:
    url, cleanup = overhead._database(backend)
    DBOS(config=dbos_config("crew_durable_bench", url, log_level="WARNING"))
    DBOS.launch()
    server = serve_in_process(overhead.brain_for(completions), overhead.FAKE_PORT)
    server.__enter__()
    write = _stream.write_to_run_stream
    try:
        task = Task(description="Look up the keys.", expected_output="done", agent=overhead.durable)
        streamed = Task(description="Look up the keys.", expected_output="done", agent=streamer)

        def without_events() -> Any:
            _stream.write_to_run_stream = lambda *args, **kwargs: None  # type: ignore[assignment]
            try:
                return overhead.durable.execute_task(task)
            finally:
                _stream.write_to_run_stream = write

        runs: dict[str, Callable[[], Any]] = {
            "events": lambda: overhead.durable.execute_task(task),
            "no_events": without_events,
            "events_and_tokens": lambda: streamer.execute_task(streamed),
        }
        for run in runs.values():  # warm up every path
            run()
        timings, _ = overhead.alternating(runs, rounds)
    finally:
        server.__exit__(None, None, None)
        DBOS.destroy(destroy_registry=False)
        cleanup()
    events = overhead._paired_median(timings["events"], timings["no_events"]) / completions
    low, high = (b / completions for b in overhead._median_interval(timings["events"], timings["no_events"]))
    tokens = overhead._paired_median(timings["events_and_tokens"], timings["no_events"]) / completions
    unwatched = statistics.median(timings["no_events"]) / completions
    return {
        "backend": backend,
        "rounds": rounds,
        "completions_per_run": completions,
        "median_ms": {name: statistics.median(values) for name, values in timings.items()},
        "events_ms_per_completion": events,
        "events_ms_per_completion_95": [low, high],
        "events_and_tokens_ms_per_completion": tokens,
        "events_share_at_zero_latency": events / unwatched,
        "events_share_at_model_seconds": events / (MODEL_SECONDS * 1000 + unwatched),
    }


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| backend | run, no events | run, events | events / completion (95% interval) "
        "| share, model at 0 s | share, model at 1 s | events + tokens / completion |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m = r["median_ms"]
        low, high = r["events_ms_per_completion_95"]
        lines.append(
            f"| {r['backend']} | {m['no_events']:.1f} ms | {m['events']:.1f} ms "
            f"| {r['events_ms_per_completion']:.2f} ms ({low:.2f} to {high:.2f}) "
            f"| {r['events_share_at_zero_latency']:.1%} | {r['events_share_at_model_seconds']:.2%} "
            f"| {r['events_and_tokens_ms_per_completion']:.2f} ms |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--completions", type=int, default=10)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    print(f"Measuring {args.backends} ({args.rounds} rounds); crewAI's console output is muted...")
    with overhead._quiet():
        results = [measure(b, args.rounds, args.completions) for b in args.backends.split(",")]
    print(f"\n{args.rounds} alternating rounds, {args.completions} completions per run (medians):\n")
    print(table(results))
    overhead.RESULTS.mkdir(exist_ok=True)
    out = overhead.RESULTS / f"streaming-{time.strftime('%Y%m%d-%H%M%S')}.json"
    machine = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()}
    out.write_text(json.dumps({"machine": machine, "results": results}, indent=2))
    print(f"\nWritten to {out}")


if __name__ == "__main__":
    main()
