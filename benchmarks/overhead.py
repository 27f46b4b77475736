"""What crew_durable adds per LLM step, beyond DBOS's own cost for the same work.

    ./dev bench [--rounds 100] [--completions 10] [--backends sqlite,postgres]

End to end: in one process, against a local OpenAI-compatible fake that
answers at zero latency (from a process of its own, as a remote model would),
it alternates four runs of the same shape, round after round:

- plain:    a crewAI agent executes a task of N completions (N-1 tool calls);
- naive:    the same agent, its LLM wrapped in the least a hand-written DBOS
            integration does (each completion a step that pickles what the
            provider returned), the task run inside a @DBOS.workflow;
- durable:  the same agent as a DBOSAgent: one workflow, N completion steps;
- dbos:     a bare DBOS workflow with the same inputs, N steps recording the
            same JSON the durable steps record, and the same output.

crew_durable's cost per step is (durable - naive) / N, the difference taken
pairwise within each round: naive pays DBOS's cost for the same steps, made
from the same crewAI threads, so what is left is crew_durable's design
(JSON records, usage, run descriptions, executors that recover). The bare
workflow shows what DBOS's steps cost outside crewAI, where its calls do not
compete with crewAI's threads for the CPU and the GIL.

Own code: crew_durable's Python alone, without a database: the LLM wrapper
around a stub model (per completion) and what each run adds around crewAI's
loop (describing it, configuring an executor, taking its outcome), per step.

Prints the tables and writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OTEL_SDK_DISABLED", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
os.environ.setdefault("CREWAI_TESTING", "true")

import psycopg
from crewai import LLM, Agent, Task
from crewai.llms.base_llm import BaseLLM
from crewai.tools import tool
from dbos import DBOS, WorkflowSerializationFormat
from pydantic import Field

from crew_durable import DBOSLLM, DBOSAgent, _usage, dbos_config
from crew_durable import _agent_run as run_module
from crew_durable import _executor as executor_module
from tools.fake_openai import serve_in_process, tool_call

RESULTS = Path(__file__).resolve().parent / "results"
POSTGRES_SERVER = os.environ.get("CREW_DURABLE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
FAKE_PORT = 8766


@tool
def lookup(key: int) -> str:
    """Look a key up (no side effect, no step)."""
    return f"value-{key}"


def _llm() -> BaseLLM:
    return LLM(model="gpt-4o-mini", base_url=f"http://127.0.0.1:{FAKE_PORT}/v1", api_key="sk-benchmark")


def _agent(llm: BaseLLM | None = None) -> Agent:
    llm = llm or _llm()
    return Agent(role="Looker", goal="Look keys up", backstory="Fast.", tools=[lookup], llm=llm)


plain = _agent()
durable = DBOSAgent(agent_name="benchmark.looker", orig_agent=_agent())


def brain_for(completions: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def brain(body: dict[str, Any]) -> dict[str, Any]:
        done = sum(1 for m in body["messages"] if m["role"] == "tool")
        if done < completions - 1:
            return {"tool_calls": [tool_call("lookup", {"key": done}, f"call_{done}")]}
        return {"content": "done"}

    return brain


@DBOS.workflow(name="benchmark.bare", serialization_type=WorkflowSerializationFormat.PORTABLE)
def bare_workflow(payload: dict[str, Any], records: list[str]) -> dict[str, Any]:
    """The same shape of DBOS work as a durable agent run, doing nothing else."""
    for record in records:
        DBOS.run_step({"name": "benchmark.step"}, _record, record)
    return payload


def _record(record: str) -> str:
    return record


class NaiveStepLLM(BaseLLM):
    """The least a hand-written DBOS integration does: each completion a step, its result pickled."""

    wrapped: BaseLLM = Field(exclude=True)

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        return DBOS.run_step({"name": "naive.llm"}, self.wrapped.call, messages, *args, **kwargs)

    def supports_function_calling(self) -> bool:
        supports = getattr(self.wrapped, "supports_function_calling", None)
        return bool(supports()) if callable(supports) else False


naive = _agent(NaiveStepLLM(model="gpt-4o-mini", wrapped=_llm()))
naive_task = Task(description="Look up the keys.", expected_output="done", agent=naive)


@DBOS.workflow(name="benchmark.naive")
def naive_workflow() -> Any:
    return naive.execute_task(naive_task)


def end_to_end(backend: str, rounds: int, completions: int) -> dict[str, Any]:
    url, cleanup = _database(backend)
    DBOS(config=dbos_config("crew_durable_bench", url, log_level="WARNING"))
    DBOS.launch()
    server = serve_in_process(brain_for(completions), FAKE_PORT)
    server.__enter__()
    try:
        task = Task(description="Look up the keys.", expected_output="done", agent=plain)
        durable_task = Task(description="Look up the keys.", expected_output="done", agent=durable)
        plain.execute_task(task)  # warm up every path (imports, connections)
        naive_workflow()
        durable.execute_task(durable_task)
        last = DBOS.list_workflows(limit=1, sort_desc=True)[0]
        status = DBOS.get_workflow_status(last.workflow_id)
        payload: dict[str, Any] = dict(status.input or {}) if status is not None else {}
        records = [str(step["output"]) for step in DBOS.list_workflow_steps(last.workflow_id)]
        runs: dict[str, Callable[[], Any]] = {
            "plain": lambda: plain.execute_task(task),
            "naive": naive_workflow,
            "durable": lambda: durable.execute_task(durable_task),
            "dbos": lambda: bare_workflow(payload, records),
        }
        rss_before = _rss_mb()
        timings, cpu = alternating(runs, rounds)
        rss_growth = _rss_mb() - rss_before
    finally:
        server.__exit__(None, None, None)
        DBOS.destroy(destroy_registry=False)
        cleanup()
    return {
        "backend": backend,
        "completions_per_run": completions,
        "rounds": rounds,
        "median_ms": {name: statistics.median(values) for name, values in timings.items()},
        "dbos_ms_per_step": statistics.median(timings["dbos"]) / completions,
        "naive_ms_per_step": _paired_median(timings["naive"], timings["plain"]) / completions,
        "crew_durable_ms_per_step": _paired_median(timings["durable"], timings["naive"]) / completions,
        "crew_durable_ms_per_step_95": [
            bound / completions for bound in _median_interval(timings["durable"], timings["naive"])
        ],
        "crew_durable_cpu_ms_per_step": _paired_median(cpu["durable"], cpu["naive"]) / completions,
        "rss_growth_mb_over_runs": rss_growth,
    }


def _paired_median(these: list[float], those: list[float]) -> float:
    """The median of the differences between runs of the same round."""
    return statistics.median(a - b for a, b in zip(these, those, strict=True))


def _median_interval(these: list[float], those: list[float], resamples: int = 2000) -> tuple[float, float]:
    """A 95% bootstrap interval of the paired median: how far the machine's noise lets us see."""
    differences = [a - b for a, b in zip(these, those, strict=True)]
    pick = random.Random(0).choices
    medians = sorted(statistics.median(pick(differences, k=len(differences))) for _ in range(resamples))
    return medians[int(resamples * 0.025)], medians[int(resamples * 0.975)]


class StubLLM(BaseLLM):
    """A model that answers at once, with a tool call, and reports token usage."""

    def call(self, *args: Any, **kwargs: Any) -> Any:
        self._track_token_usage_internal({"prompt_tokens": 120, "completion_tokens": 20, "total_tokens": 140})
        return [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"key": 1}'}}
        ]


def alternating(
    runs: dict[str, Callable[[], Any]], rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU ms of each run, ``rounds`` times, in an order that rotates round by round.

    Variants alternate so drift of the machine hits them alike; as timeit
    does, each run starts after a collection, with the collector off.
    """
    timings: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for round_number in range(rounds):
        shift = round_number % len(runs)
        for name in list(runs)[shift:] + list(runs)[:shift]:
            gc.collect()
            gc.disable()
            started, started_cpu = time.perf_counter(), time.process_time()
            try:
                runs[name]()
            finally:
                gc.enable()
            timings[name].append((time.perf_counter() - started) * 1000)
            cpu[name].append((time.process_time() - started_cpu) * 1000)
    return timings, cpu


def own_code(completions: int, repeats: int = 2000) -> dict[str, Any]:
    """crew_durable's Python alone: the LLM wrapper per completion, and per run around crewAI's loop."""
    stub = StubLLM(model="stub")
    wrapper = DBOSLLM.around(stub, "benchmark.stub.llm", None)
    messages = [{"role": "user", "content": "Look up the keys." * 20}]
    direct = _per_call_ms(lambda: stub.call(messages), repeats)
    wrapped = _per_call_ms(lambda: wrapper.call(messages), repeats)
    launcher = durable.agent_executor
    assert isinstance(launcher, executor_module.DurableAgentExecutor)
    inputs = {
        "input": "Look up the keys.",
        "tool_names": "lookup",
        "tools": "lookup",
        "ask_for_human_input": False,
    }
    url, cleanup = _database("sqlite")
    DBOS(config=dbos_config("crew_durable_bench", url, log_level="WARNING"))
    DBOS.launch()  # describing a run checks that DBOS is launched; nothing else touches it

    def one_run() -> None:
        spec = launcher._describe_run(inputs)
        configured = launcher._fork().apply_to(run_module._idle_executors.take("benchmark.looker"))
        run_module._idle_executors.give("benchmark.looker", configured)
        with _usage.collecting_run_usage() as usage:
            outcome = run_module._outcome(spec, configured, {"output": "done"}, usage)
        launcher._adopt(outcome)

    try:
        per_run = _per_call_ms(one_run, repeats // 10)
    finally:
        DBOS.destroy(destroy_registry=False)
        cleanup()
    return {
        "wrapper_ms_per_completion": wrapped - direct,
        "per_run_ms": per_run,
        "ms_per_step": wrapped - direct + per_run / completions,
    }


def _per_call_ms(call: Callable[[], Any], repeats: int) -> float:
    call()
    started = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - started) * 1000 / repeats


def _database(backend: str) -> tuple[str, Callable[[], None]]:
    if backend == "sqlite":
        directory = tempfile.mkdtemp(prefix="crew-durable-bench-")
        return f"sqlite:///{directory}/bench.sqlite", lambda: None
    name = f"crew_durable_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{POSTGRES_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(f"{POSTGRES_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{POSTGRES_SERVER}/{name}", drop


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tables(results: list[dict[str, Any]], own: dict[str, Any]) -> str:
    lines = [
        "| backend | plain crewAI | naive DBOS steps | durable | bare DBOS workflow "
        "| DBOS / step, bare | DBOS / step, in crewAI | crew_durable / step (95% interval) "
        "| crew_durable CPU / step | max RSS growth |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m = r["median_ms"]
        low, high = r["crew_durable_ms_per_step_95"]
        lines.append(
            f"| {r['backend']} | {m['plain']:.1f} ms | {m['naive']:.1f} ms | {m['durable']:.1f} ms "
            f"| {m['dbos']:.1f} ms | {r['dbos_ms_per_step']:.2f} ms | {r['naive_ms_per_step']:.2f} ms "
            f"| {r['crew_durable_ms_per_step']:.2f} ms ({low:.2f} to {high:.2f}) "
            f"| {r['crew_durable_cpu_ms_per_step']:.2f} ms | {r['rss_growth_mb_over_runs']:.1f} MB |"
        )
    lines += [
        "",
        "| crew_durable's own code | per completion (wrapper) | per run | per step |",
        "|---|---|---|---|",
        f"| no database | {own['wrapper_ms_per_completion'] * 1000:.0f} µs | {own['per_run_ms']:.2f} ms "
        f"| {own['ms_per_step'] * 1000:.0f} µs |",
    ]
    return "\n".join(lines)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Mute crewAI's panels and warnings (the same in every kind of run), so the table stands out."""
    logging.getLogger("crewai").setLevel(logging.ERROR)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--completions", type=int, default=10)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    print(f"Measuring {args.backends} ({args.rounds} rounds); crewAI's console output is muted...")
    with _quiet():
        results = [end_to_end(b, args.rounds, args.completions) for b in args.backends.split(",")]
        own = own_code(args.completions)
    print(f"\n{args.rounds} alternating rounds, {args.completions} completions per run (medians):\n")
    print(tables(results, own))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"overhead-{time.strftime('%Y%m%d-%H%M%S')}.json"
    machine = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()}
    out.write_text(json.dumps({"machine": machine, "end_to_end": results, "own_code": own}, indent=2))
    print(f"\nWritten to {out}")


if __name__ == "__main__":
    main()
