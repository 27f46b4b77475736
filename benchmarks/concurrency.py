"""Throughput of N concurrent crew runs in one process, with threads and with asyncio.

    python -m benchmarks.concurrency [--concurrency 1,8,32] [--rounds 3] [--backends ...] [--quick]

A one-task crew of 3 completions (2 tool calls), the model a local fake that
takes 50 ms per completion (in a process of its own), so one run alone takes
at least 150 ms. N runs at once, in one process:

- threads: N threads, each calling ``DBOSCrew.kickoff``;
- asyncio: one event loop, ``asyncio.gather`` of N ``DBOSCrew.akickoff``.

Rounds alternate the two; the table gives medians. Beside the throughput,
what would saturate: the process's CPU (CPU seconds per wall second: one
interpreter holds the GIL, so about 1.0 is all its Python gets), the most
system-database connections checked out at once against the pool's size
(DBOS's default is 20, without overflow), and the most threads alive (DBOS's
executor has no bound by default). For more than one process, see
``benchmarks/workers.py`` (1 against 3 worker processes).

Prints a table and writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks import _scale  # sets crewAI's quiet environment first  # isort: skip

from crewai import Crew, Task

from benchmarks import overhead
from crew_durable import DBOSCrew
from tools.fake_openai import serve_in_process

LATENCY = 0.05
COMPLETIONS = 3

_agent = _scale.agent(role="Concurrent looker")
crew = DBOSCrew(
    crew_name="scale.concurrent",
    orig_crew=Crew(
        agents=[_agent],
        tasks=[Task(description=f"Look up {COMPLETIONS} keys.", expected_output="done", agent=_agent)],
    ),
)


class Sampler:
    """Samples, every 5 ms: connections checked out of the system-database pool, threads alive."""

    def __init__(self) -> None:
        self.pool = _scale.system_engine().pool
        self.max_checked_out = 0
        self.max_threads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.max_checked_out = max(self.max_checked_out, self.pool.checkedout())  # type: ignore[attr-defined]
            self.max_threads = max(self.max_threads, threading.active_count())

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def _threads(n: int) -> list[float]:
    def one() -> float:
        started = time.perf_counter()
        crew.kickoff(inputs={})
        return time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(lambda _: one(), range(n)))


def _asyncio(n: int) -> list[float]:
    async def one() -> float:
        started = time.perf_counter()
        await crew.akickoff(inputs={})
        return time.perf_counter() - started

    async def many() -> list[float]:
        return list(await asyncio.gather(*(one() for _ in range(n))))

    return asyncio.run(many())


MODES: dict[str, Callable[[int], list[float]]] = {"threads": _threads, "asyncio": _asyncio}


def _once(mode: str, n: int) -> dict[str, Any]:
    with Sampler() as sampler:
        started, cpu = time.perf_counter(), time.process_time()
        latencies = MODES[mode](n)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "seconds": wall,
        "runs_per_second": n / wall,
        "cpu_per_wall": cpu / wall,
        "cpu_ms_per_run": cpu * 1000 / n,
        "median_run_seconds": statistics.median(latencies),
        "max_checked_out": sampler.max_checked_out,
        "max_threads": sampler.max_threads,
    }


def measure(backend: str, levels: list[int], rounds: int) -> dict[str, Any]:
    url, drop = _scale.database(backend)
    results: dict[str, dict[int, list[dict[str, Any]]]] = {m: {n: [] for n in levels} for m in MODES}
    try:
        with _scale.launched(url):
            pool_size = _scale.system_engine().pool.size()  # type: ignore[attr-defined]
            for mode in MODES:  # warm up
                MODES[mode](2)
            for round_number in range(rounds):
                for n in levels:
                    modes = list(MODES) if round_number % 2 == 0 else list(reversed(MODES))
                    for mode in modes:
                        results[mode][n].append(_once(mode, n))
    finally:
        drop()
    rows = []
    for mode, by_n in results.items():
        for n, runs in by_n.items():
            row: dict[str, Any] = {"mode": mode, "concurrency": n}
            for key in runs[0]:
                row[key] = statistics.median(r[key] for r in runs)
            rows.append(row)
    return {"backend": backend, "pool_size": pool_size, "rounds": rounds, "rows": rows}


def _verdict(row: dict[str, Any], pool_size: int, ideal: float, backend: str) -> str:
    """Why N runs at once do not go N times as fast as one."""
    efficiency = row["runs_per_second"] / (row["concurrency"] * ideal)
    if efficiency > 0.8:
        return f"{efficiency:.0%} of ideal: not saturated"
    ceiling = 1000 / row["cpu_ms_per_run"]  # runs/s one CPU could do, at this run's CPU cost
    reasons = []
    if row["runs_per_second"] >= 0.6 * ceiling or row["cpu_per_wall"] >= 0.85:
        reasons.append(
            f"CPU/GIL: {row['cpu_ms_per_run']:.0f} ms CPU per run caps one process near {ceiling:.0f}/s"
        )
    if row["max_checked_out"] >= pool_size:
        reasons.append(f"pool full ({row['max_checked_out']:.0f}/{pool_size})")
    waits = "SQLite's one writer: commits wait their turn" if backend == "sqlite" else "waits"
    return f"{efficiency:.0%} of ideal; " + ("; ".join(reasons) or waits)


def report(results: list[dict[str, Any]]) -> str:
    headers = [
        "backend",
        "mode",
        "N",
        "runs/s",
        "median run",
        "CPU s per wall s",
        "CPU per run",
        "max connections (pool)",
        "max threads",
        "where it saturates",
    ]
    rows = []
    for r in results:
        for mode in MODES:
            mine = [row for row in r["rows"] if row["mode"] == mode]
            ideal = 1 / mine[0]["median_run_seconds"]  # runs per second of one run alone
            for row in mine:
                rows.append(
                    [
                        r["backend"],
                        mode,
                        row["concurrency"],
                        f"{row['runs_per_second']:.1f}",
                        f"{row['median_run_seconds'] * 1000:.0f} ms",
                        f"{row['cpu_per_wall']:.2f}",
                        f"{row['cpu_ms_per_run']:.0f} ms",
                        f"{row['max_checked_out']} ({r['pool_size']})",
                        row["max_threads"],
                        _verdict(row, r["pool_size"], ideal, r["backend"]),
                    ]
                )
    _scale.print_table(
        f"Concurrent crew runs in one process ({COMPLETIONS} completions each, "
        f"model at {LATENCY * 1000:.0f} ms)",
        headers,
        rows,
    )
    return _scale.markdown_table(headers, rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--quick", action="store_true", help="1 round")
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    levels = [int(n) for n in args.concurrency.split(",")]
    print(f"Concurrency {levels}, threads and asyncio, {rounds} round(s) ({args.backends})...")
    with (
        overhead._quiet(),
        serve_in_process(functools.partial(_scale.task_brain, latency=LATENCY), _scale.PORT),
    ):
        results = [measure(b, levels, rounds) for b in args.backends.split(",")]
    table = report(results)
    out = _scale.write("concurrency", {"results": results, "table": table})
    print(f"\nWritten to {out}")
    return {"results": results, "table": table}


if __name__ == "__main__":
    main()
