"""Recovery at depth: a run killed after 10, 100 or 1,000 finished completions, recovered.

    python -m benchmarks.depth [--depths 10,100,1000] [--trials 3] [--backends sqlite,postgres] [--quick]

For each depth N, a real process runs a durable agent task whose model
calls a tool N times and is SIGKILLed while completion N+1 is in flight:
N finished completion steps (and their tool calls and events) are recorded.
Each trial then recovers a copy of that database (a copied SQLite file, a
Postgres ``CREATE DATABASE ... TEMPLATE``) in a new process and measures,
from ``DBOS.launch()`` returning to the request of completion N+1 reaching
the model (the recovered run's first new step), and the recovering process's
peak RSS.

Beside it, DBOS's own read: a bare ``@DBOS.workflow`` with as many recorded
operations, of the same sizes, killed and recovered the same way (its next
step is the first new one). The replay cost per recorded completion beyond
DBOS's is the difference of the two slopes between the smallest and the
largest depth.

Prints a table and writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks import _scale  # sets crewAI's quiet environment first  # isort: skip

import psycopg
from crewai import Task
from crewai.llms.base_llm import BaseLLM
from dbos import DBOS, WorkflowSerializationFormat

from benchmarks import overhead
from crew_durable import DBOSAgent
from tools.fake_openai import serve_in_process, tool_call

MARKERS = "CREW_DURABLE_SCALE_MARKERS"
DEPTHS, QUICK_DEPTHS = "10,100,1000", "10,100,500"
_DEPTH = re.compile(r"Depth (\d+)\.")

deep = DBOSAgent(
    agent_name="scale.deep",
    orig_agent=_scale.agent(role="Deep looker", max_iter=5000, respect_context_window=False),
)


def _task(depth: int) -> Task:
    return Task(description=f"Depth {depth}. Look up keys until told.", expected_output="done", agent=deep)


def _markers() -> Path:
    return Path(os.environ[MARKERS])


def _at_kill_point(depth: int) -> None:
    """The first new step of a run at ``depth``: block (to be killed) while building, else note the time."""
    markers = _markers()
    if (markers / f"block-{depth}").exists():
        (markers / f"paused-{depth}").write_text(str(time.time()))
        while True:
            time.sleep(60)
    (markers / f"arrived-{depth}").write_text(str(time.time()))


def brain(body: dict[str, Any]) -> dict[str, Any]:
    user = next(str(m["content"]) for m in body["messages"] if m["role"] == "user")
    match = _DEPTH.search(user)
    depth = int(match.group(1)) if match else 0
    done = sum(1 for m in body["messages"] if m["role"] == "tool")
    if done < depth:
        return {"tool_calls": [tool_call("lookup", {"key": done}, f"call_{done}")]}
    _at_kill_point(depth)
    return {"content": f"done after {done} lookups"}


@DBOS.workflow(name="scale.deep_bare", serialization_type=WorkflowSerializationFormat.PORTABLE)
def deep_bare(depth: int, sizes: list[int]) -> int:
    """As many recorded operations as a durable run at ``depth``, of the same sizes; then a new step."""
    for size in sizes:
        DBOS.run_step({"name": "scale.recorded"}, _payload, size)
    DBOS.run_step({"name": "scale.first_new_step"}, _at_kill_point, -depth)
    return depth


def _payload(size: int) -> str | None:
    return "x" * size if size else None


class _InstantModel(BaseLLM):
    """A model in the process that answers at once: what crewAI's own loop costs, without HTTP or DBOS."""

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        done = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "tool")
        wanted = int(_DEPTH.search(str(messages)).group(1))  # type: ignore[union-attr]
        if done < wanted:
            arguments = json.dumps({"key": done})
            return [
                {
                    "id": f"call_{done}",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": arguments},
                }
            ]
        return "done"

    def supports_function_calling(self) -> bool:
        return True


def crewai_loop_ms(low: int, high: int, rounds: int = 3) -> float:
    """crewAI's own cost per completion of this task's loop (plain crewAI, a model in the process)."""
    plain = _scale.agent(role="Plain deep looker", max_iter=5000, respect_context_window=False)
    plain.llm = _InstantModel(model="instant")

    def timed(depth: int) -> float:
        task = Task(
            description=f"Depth {depth}. Look up keys until told.", expected_output="done", agent=plain
        )
        started = time.perf_counter()
        plain.execute_task(task)
        return time.perf_counter() - started

    timed(low)
    lows, highs = [], []
    for _ in range(rounds):
        lows.append(timed(low))
        highs.append(timed(high))
    return (statistics.median(highs) - statistics.median(lows)) * 1000 / (high - low)


# -- the child processes ---------------------------------------------------------------


def child(mode: str, kind: str, depth: int, workflow_id: str, sizes_file: str) -> None:
    from dbos import SetWorkflowID

    from crew_durable import dbos_config

    DBOS(
        config=dbos_config(
            "crew_durable_scale_depth", os.environ["DBOS_SYSTEM_DATABASE_URL"], log_level="WARNING"
        )
    )
    DBOS.launch()
    launched = time.time()
    rss_at_launch = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if mode == "build":
        with SetWorkflowID(workflow_id):
            if kind == "durable":
                deep.execute_task(_task(depth))
            else:
                deep_bare(depth, json.loads(Path(sizes_file).read_text()))
        raise SystemExit("the run was not killed")
    DBOS.retrieve_workflow(workflow_id).get_result(polling_interval_sec=0.01)
    report = {
        "launched_at": launched,
        "finished_at": time.time(),
        "rss_at_launch_mb": rss_at_launch / 1024,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(report), flush=True)
    DBOS.destroy(destroy_registry=False)


# -- the parent --------------------------------------------------------------------------


def _spawn(
    mode: str,
    kind: str,
    depth: int,
    workflow_id: str,
    url: str,
    sizes: Path,
    markers: Path,
    out: Path,
    profile: Path | None = None,
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DBOS_SYSTEM_DATABASE_URL": url, MARKERS: str(markers)}
    command = [
        sys.executable,
        "-m",
        "benchmarks.depth",
        "child",
        mode,
        kind,
        str(depth),
        workflow_id,
        str(sizes),
    ]
    if profile is not None:
        py_spy = Path(sys.executable).with_name("py-spy")
        command = [
            str(py_spy),
            "record",
            "--format",
            "raw",
            "--rate",
            "500",
            "--nonblocking",
            "-o",
            str(profile),
            "--",
            *command,
        ]
    return subprocess.Popen(command, env=env, stdout=out.open("wb"), stderr=subprocess.STDOUT)


def _copy(backend: str, url: str, directory: Path) -> tuple[str, Any]:
    """A copy of the database at ``url``, and how to drop it."""
    if backend == "sqlite":
        source = Path(url.removeprefix("sqlite:///"))
        target = directory / f"copy-{uuid.uuid4().hex[:8]}.sqlite"
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{source}{suffix}").exists():
                shutil.copy(f"{source}{suffix}", f"{target}{suffix}")
        return f"sqlite:///{target}", lambda: None
    name = f"crew_durable_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{overhead.POSTGRES_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{url.rsplit("/", 1)[1]}"')

    def drop() -> None:
        with psycopg.connect(f"{overhead.POSTGRES_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{overhead.POSTGRES_SERVER}/{name}", drop


def build(kind: str, depth: int, url: str, directory: Path, markers: Path, sizes: Path) -> tuple[str, float]:
    """Run to completion ``depth + 1`` and SIGKILL it there; the workflow id and how long it took."""
    workflow_id = f"depth-{kind}-{depth}-{uuid.uuid4().hex[:8]}"
    key = depth if kind == "durable" else -depth
    (markers / f"block-{key}").write_text("")
    started = time.perf_counter()
    process = _spawn(
        "build", kind, depth, workflow_id, url, sizes, markers, directory / f"build-{kind}-{depth}.out"
    )
    deadline = time.monotonic() + 1200
    while not (markers / f"paused-{key}").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError((directory / f"build-{kind}-{depth}.out").read_text()[-3000:])
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    (markers / f"block-{key}").unlink()
    (markers / f"paused-{key}").unlink()
    return workflow_id, seconds


def recover(
    kind: str,
    depth: int,
    backend: str,
    url: str,
    workflow_id: str,
    directory: Path,
    markers: Path,
    sizes: Path,
    profile: Path | None = None,
) -> dict[str, Any]:
    key = depth if kind == "durable" else -depth
    arrived = markers / f"arrived-{key}"
    arrived.unlink(missing_ok=True)
    copy, drop = _copy(backend, url, directory)
    out = directory / f"recover-{kind}-{depth}-{uuid.uuid4().hex[:6]}.out"
    try:
        process = _spawn("recover", kind, depth, workflow_id, copy, sizes, markers, out, profile)
        if process.wait(timeout=1200) != 0:
            raise RuntimeError(out.read_text()[-3000:])
    finally:
        drop()
    report: dict[str, Any] = json.loads(
        next(line for line in reversed(out.read_text().splitlines()) if line.startswith("{"))
    )
    report["first_new_step_seconds"] = float(arrived.read_text()) - report["launched_at"]
    return report


def measure(
    backend: str, depths: list[int], trials: int, directory: Path, markers: Path, profile_depth: int | None
) -> dict[str, Any]:
    rows = []
    for depth in depths:
        url, drop = _scale.database(backend)
        try:
            workflow_id, built = build("durable", depth, url, directory, markers, directory / "none")
            operations = _scale.step_rows(url, workflow_id)
            child_ops = operations  # the agent run is the workflow itself
            sizes = directory / f"sizes-{backend}-{depth}.json"
            sizes.write_text(json.dumps([size for _, _, size in child_ops]))
            bare_url, bare_drop = _scale.database(backend)
            try:
                bare_id, _ = build("bare", depth, bare_url, directory, markers, sizes)
                durable_runs, bare_runs = [], []
                for _ in range(trials):  # alternating
                    durable_runs.append(
                        recover("durable", depth, backend, url, workflow_id, directory, markers, sizes)
                    )
                    bare_runs.append(
                        recover("bare", depth, backend, bare_url, bare_id, directory, markers, sizes)
                    )
                profile_ms: dict[str, float] | None = None
                if profile_depth == depth:
                    profiled = directory / f"profile-{backend}-{depth}.txt"
                    recover("durable", depth, backend, url, workflow_id, directory, markers, sizes, profiled)
                    summary, profile_ms = summarize(profiled, depth)
                    _scale.RESULTS.mkdir(exist_ok=True)
                    shutil.copy(profiled, _scale.RESULTS / f"depth-profile-{backend}-{depth}.raw")
                    (_scale.RESULTS / f"depth-profile-{backend}-{depth}.txt").write_text(summary)
                    print(summary)
            finally:
                bare_drop()
        finally:
            drop()
        rows.append(
            {
                "depth": depth,
                "operations": len(child_ops),
                "profile_ms_per_completion": profile_ms,
                "build_seconds": built,
                "durable_seconds": [r["first_new_step_seconds"] for r in durable_runs],
                "bare_seconds": [r["first_new_step_seconds"] for r in bare_runs],
                "durable_peak_rss_mb": [r["peak_rss_mb"] for r in durable_runs],
                "durable_rss_at_launch_mb": [r["rss_at_launch_mb"] for r in durable_runs],
                "bare_peak_rss_mb": [r["peak_rss_mb"] for r in bare_runs],
                "durable_median_s": statistics.median(r["first_new_step_seconds"] for r in durable_runs),
                "bare_median_s": statistics.median(r["first_new_step_seconds"] for r in bare_runs),
            }
        )
    low, high = rows[0], rows[-1]
    span = high["depth"] - low["depth"]
    slope = {
        "durable_ms_per_completion": (high["durable_median_s"] - low["durable_median_s"]) * 1000 / span,
        "bare_ms_per_completion": (high["bare_median_s"] - low["bare_median_s"]) * 1000 / span,
    }
    slope["beyond_dbos_ms_per_completion"] = (
        slope["durable_ms_per_completion"] - slope["bare_ms_per_completion"]
    )
    with overhead._quiet():
        slope["crewai_loop_ms_per_completion"] = crewai_loop_ms(low["depth"], min(high["depth"], 200))
    slope["beyond_dbos_and_crewai_ms_per_completion"] = (
        slope["beyond_dbos_ms_per_completion"] - slope["crewai_loop_ms_per_completion"]
    )
    return {"backend": backend, "trials": trials, "depths": rows, "slope": slope}


_GROUPS = (
    ("crew_durable", "crew_durable/"), ("DBOS", "dbos/"), ("SQLAlchemy and the driver", "sqlalchemy/"),
    ("openai SDK", "openai/"), ("crewAI", "crewai/"), ("rich (crewAI's console)", "rich/"),
    ("pydantic", "pydantic"), ("imports", "importlib"),
)  # fmt: skip
_IDLE = ("EpollSelector.select", "select (", "Condition.wait", "wait (", "_worker (concurrent")


def summarize(profile: Path, completions: int) -> tuple[str, dict[str, float]]:
    """Where the recovering process's threads spent their time, per replayed completion.

    Each busy sample of py-spy's raw stacks (threads only: the main thread
    just waits) goes to the innermost frame of a known package; the live
    completion that ends the recovery is counted apart.
    """
    ms: dict[str, float] = {}
    for line in profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not count.isdigit() or not any(f.startswith("Thread._bootstrap (") for f in frames):
            continue
        if frames[-1].startswith(_IDLE):
            group = "waiting"
        elif any(f.startswith("DBOSLLM._complete (") for f in frames):
            group = "the first new completion (live)"
        else:
            group = next(
                (name for f in reversed(frames) for name, pattern in _GROUPS if pattern in f),
                "Python's stdlib",
            )
        ms[group] = ms.get(group, 0.0) + int(count) * 1000 / 500
    per = {group: value / completions for group, value in ms.items()}
    lines = [f"Recovery of {completions} completions, py-spy at 500 Hz: ms per replayed completion"]
    lines += [f"{value:8.2f} ms  {group}" for group, value in sorted(per.items(), key=lambda item: -item[1])]
    return "\n".join(lines), per


def report(results: list[dict[str, Any]]) -> str:
    headers = [
        "backend",
        "finished completions",
        "recorded operations",
        "launch to first new step (median)",
        "DBOS alone, same operations",
        "peak RSS (at launch)",
        "DBOS alone, peak RSS",
    ]
    rows = []
    for r in results:
        for d in r["depths"]:
            rows.append(
                [
                    r["backend"],
                    d["depth"],
                    d["operations"],
                    f"{d['durable_median_s'] * 1000:.0f} ms",
                    f"{d['bare_median_s'] * 1000:.0f} ms",
                    f"{max(d['durable_peak_rss_mb']):.0f} MB ({max(d['durable_rss_at_launch_mb']):.0f} MB)",
                    f"{max(d['bare_peak_rss_mb']):.0f} MB",
                ]
            )
    _scale.print_table("Recovery at depth", headers, rows)
    sheaders = [
        "backend",
        "replay per completion",
        "DBOS's read of its operations",
        "crewAI's own loop",
        "the rest (crew_durable, contention)",
    ]
    srows = [
        [
            r["backend"],
            f"{r['slope']['durable_ms_per_completion']:.2f} ms",
            f"{r['slope']['bare_ms_per_completion']:.2f} ms",
            f"{r['slope']['crewai_loop_ms_per_completion']:.2f} ms",
            f"{r['slope']['beyond_dbos_and_crewai_ms_per_completion']:.2f} ms",
        ]
        for r in results
    ]
    _scale.print_table(
        "Replay cost per recorded completion (slope from the smallest to the largest depth)", sheaders, srows
    )
    return _scale.markdown_table(headers, rows) + "\n\n" + _scale.markdown_table(sheaders, srows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depths", default=DEPTHS)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument(
        "--profile", action="store_true", help="also profile the deepest recovery (py-spy, every thread)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 trial, depths 10,100,500 (a 1,000-step run takes minutes to build)",
    )
    args = parser.parse_args(argv)
    trials = 1 if args.quick else args.trials
    depths = [
        int(d) for d in (QUICK_DEPTHS if args.quick and args.depths == DEPTHS else args.depths).split(",")
    ]
    print(
        f"Recovery at depths {depths}, {trials} trial(s) ({args.backends}); "
        "building the runs takes a while..."
    )
    directory = Path(tempfile.mkdtemp(prefix="crew-durable-depth-"))
    markers = directory / "markers"
    markers.mkdir()
    os.environ[MARKERS] = str(markers)
    with serve_in_process(brain, _scale.PORT):
        results = [
            measure(b, depths, trials, directory, markers, max(depths) if args.profile else None)
            for b in args.backends.split(",")
        ]
    table = report(results)
    out = _scale.write("depth", {"results": results, "table": table})
    print(f"\nWritten to {out}")
    shutil.rmtree(directory, ignore_errors=True)
    return {"results": results, "table": table}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        import logging

        logging.getLogger("crewai").setLevel(logging.ERROR)
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6])
    else:
        main()
