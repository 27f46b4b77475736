"""Throughput of crew runs on worker processes: 1 against 3 workers, against a model at fixed latency.

    python -m benchmarks.workers [--runs 60] [--concurrency 4] [--rounds 2]

A one-task crew (tests/support/apps/fleet.py: two completions and a tool
step per run) is enqueued ``--runs`` times from a process without the crew
code, on a fresh Postgres database, and run by ``crew-durable worker``
processes; the model (a local fake, in a process of its own) takes 50 ms per
completion. Throughput is runs finished per second, from the first enqueue
to the last result. Workers start before the clock does. Rounds alternate
1 and 3 workers; the table gives medians.

Prints a table and writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks import overhead  # sets crewAI's quiet environment first  # isort: skip

from crew_durable import CrewClient
from tests.support.apps import fleet
from tests.support.cassettes import FAKE_PORT
from tests.support.workers import Worker
from tools.fake_openai import serve_in_process


def measure(workers: int, runs: int, concurrency: int) -> dict[str, Any]:
    url, cleanup = overhead._database("postgres")
    directory = Path(tempfile.mkdtemp(prefix="crew-durable-workers-"))
    env = {"CREW_DURABLE_TEST_LEDGER": str(directory / "ledger.jsonl")}
    pool = [
        Worker(
            "tests.support.apps.fleet", "fleet", url, directory / f"w{n}.log", env, concurrency=concurrency
        ).start()
        for n in range(workers)
    ]
    try:
        for worker in pool:
            worker.wait_until_serving()
        with CrewClient(url) as client:
            started = time.perf_counter()
            ids = [
                client.enqueue(
                    "fleet", {"order": f"o{n}"}, queue_name="fleet", run_id=f"bench-{uuid.uuid4()}"
                ).workflow_id
                for n in range(runs)
            ]
            outputs = [client.result(run_id).raw for run_id in ids]
            seconds = time.perf_counter() - started
            spread = sorted({client.status(run_id).executor_id or "" for run_id in ids})
        assert outputs == [f"Shipped o{n}: track-o{n}" for n in range(runs)]
    finally:
        for worker in pool:
            worker.stop()
        cleanup()
    return {
        "workers": workers,
        "runs": runs,
        "seconds": seconds,
        "runs_per_second": runs / seconds,
        "executors": spread,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(
        f"{args.rounds} rounds of {args.runs} runs on 1 and 3 workers "
        f"(worker concurrency {args.concurrency})..."
    )
    results: dict[int, list[dict[str, Any]]] = {1: [], 3: []}
    with serve_in_process(fleet.brain, FAKE_PORT):
        for _ in range(args.rounds):
            for workers in (1, 3):
                results[workers].append(measure(workers, args.runs, args.concurrency))
    rows = {
        n: {
            "runs_per_second": statistics.median(r["runs_per_second"] for r in rounds),
            "seconds": statistics.median(r["seconds"] for r in rounds),
        }
        for n, rounds in results.items()
    }
    print("\n| workers | runs | seconds (median) | runs per second |\n|---|---|---|---|")
    for n, row in rows.items():
        print(f"| {n} | {args.runs} | {row['seconds']:.1f} s | {row['runs_per_second']:.2f} |")
    print(
        f"\n3 workers / 1 worker: {rows[3]['runs_per_second'] / rows[1]['runs_per_second']:.2f}x "
        f"on {os.cpu_count()} CPUs"
    )
    overhead.RESULTS.mkdir(exist_ok=True)
    out = overhead.RESULTS / f"workers-{time.strftime('%Y%m%d-%H%M%S')}.json"
    machine = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()}
    out.write_text(json.dumps({"machine": machine, "medians": rows, "rounds": results}, indent=2))
    print(f"\nWritten to {out}")


if __name__ == "__main__":
    main()
