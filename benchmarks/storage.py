"""What a durable run writes to the system database, and how it grows.

    python -m benchmarks.storage [--runs 100] [--backends sqlite,postgres] [--quick]

Three measurements, on each backend, against the local fake model:

- conversation length: one agent run of 10, 50 and 200 messages (a tool call
  with a 200-character result per completion). Bytes written per completion
  step (the table deltas of the whole database, divided by completions),
  the largest completion record against the transcript it answered (a step
  must not store the transcript again), and the run's final record (its
  output: the conversation, once) per message.
- tasks: crews of 1, 4 and 16 tasks of 2 completions each; bytes per task,
  and the last task's records, to see whether a run's record grows with the
  tasks before it.
- size: the database on disk after ``--runs`` runs of the 4-task crew.

Prints tables and writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from typing import Any

from benchmarks import _scale  # sets crewAI's quiet environment first  # isort: skip

from crewai import Crew, Task
from dbos import DBOS, SetWorkflowID

from benchmarks import overhead
from crew_durable import DBOSAgent, DBOSCrew
from tools.fake_openai import serve_in_process

MESSAGES = (10, 50, 200)
TASKS = (1, 4, 16)

talker = DBOSAgent(agent_name="scale.talker", orig_agent=_scale.agent(max_iter=1000))


def _crew(tasks: int) -> DBOSCrew:
    agents = [_scale.agent(role=f"Looker {n}") for n in range(tasks)]
    return DBOSCrew(
        crew_name=f"scale.crew{tasks}",
        orig_crew=Crew(
            agents=agents,
            tasks=[
                Task(description=f"Task {n}: look up 2 keys.", expected_output="done", agent=a)
                for n, a in enumerate(agents)
            ],
        ),
    )


crews = {tasks: _crew(tasks) for tasks in TASKS}


brain = _scale.task_brain


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {t: after.get(t, 0) - before.get(t, 0) for t in after if after.get(t, 0) != before.get(t, 0)}


def conversation(url: str, messages: int) -> dict[str, Any]:
    completions = (messages - 1) // 2
    task = Task(description=f"Look up {completions} keys.", expected_output="done", agent=talker)
    workflow_id = f"storage-{uuid.uuid4()}"
    before = _scale.payload_bytes(url)
    with SetWorkflowID(workflow_id):
        talker.execute_task(task)
    written = _delta(before, _scale.payload_bytes(url))
    rows = _scale.step_rows(url, workflow_id)
    llm_steps = [size for _, name, size in rows if name.endswith(".llm")]
    record = _scale.workflow_record_bytes(url, workflow_id)
    status = DBOS.get_workflow_status(workflow_id)
    assert status is not None and isinstance(status.output, dict)
    transcript = status.output["messages"]
    transcript_bytes = len(_json(transcript).encode())
    last_request = len(_json(transcript[:-1]).encode())  # what the last completion was sent
    total = sum(written.values())
    return {
        "messages": len(transcript),
        "completions": len(llm_steps),
        "operations": len(rows),
        "bytes_written": total,
        "bytes_by_table": written,
        "bytes_per_completion": total / len(llm_steps),
        "completion_record_bytes": {
            "first": llm_steps[0],
            "last": llm_steps[-1],
            "max": max(llm_steps),
            "median": statistics.median(llm_steps),
        },
        "largest_record_share_of_transcript": max(llm_steps) / last_request,
        "transcript_bytes": transcript_bytes,
        "run_inputs_bytes": record["inputs"],
        "run_output_bytes": record["output"],
        "run_output_bytes_per_message": record["output"] / len(transcript),
    }


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


def tasks_growth(url: str, tasks: int) -> dict[str, Any]:
    workflow_id = f"storage-crew-{uuid.uuid4()}"
    before = _scale.payload_bytes(url)
    with SetWorkflowID(workflow_id):
        crews[tasks].kickoff(inputs={})
    total = sum(_delta(before, _scale.payload_bytes(url)).values())
    runs = [s["child_workflow_id"] for s in DBOS.list_workflow_steps(workflow_id) if s["child_workflow_id"]]
    records = [_scale.workflow_record_bytes(url, child) for child in runs]
    kickoff = _scale.workflow_record_bytes(url, workflow_id)
    return {
        "tasks": tasks,
        "bytes_written": total,
        "bytes_per_task": total / tasks,
        "first_task_record_bytes": records[0]["inputs"] + records[0]["output"],
        "last_task_record_bytes": records[-1]["inputs"] + records[-1]["output"],
        "kickoff_output_bytes": kickoff["output"],
    }


def size_after(url: str, runs: int) -> dict[str, Any]:
    before, started = _scale.disk_bytes(url), time.perf_counter()
    payload_before = sum(_scale.payload_bytes(url).values())
    for _ in range(runs):
        crews[4].kickoff(inputs={})
    after = _scale.disk_bytes(url)
    payload = sum(_scale.payload_bytes(url).values()) - payload_before
    return {
        "runs": runs,
        "completions_per_run": 8,
        "seconds": time.perf_counter() - started,
        "disk_bytes_before": before,
        "disk_bytes_after": after,
        "disk_bytes_per_run": (after - before) / runs,
        "payload_bytes_per_run": payload / runs,
    }


def measure(backend: str, runs: int) -> dict[str, Any]:
    url, drop = _scale.database(backend)
    try:
        with _scale.launched(url):
            talker.execute_task(Task(description="Look up 2 keys.", expected_output="done", agent=talker))
            return {
                "backend": backend,
                "conversation": [conversation(url, m) for m in MESSAGES],
                "tasks": [tasks_growth(url, t) for t in TASKS],
                "size": size_after(url, runs),
            }
    finally:
        drop()


def _kb(n: float) -> str:
    return f"{n / 1024:.1f} kB" if n >= 1024 else f"{n:.0f} B"


def report(results: list[dict[str, Any]]) -> dict[str, str]:
    conv_headers = [
        "backend",
        "messages",
        "completions",
        "bytes / completion",
        "completion record: first / last / max",
        "largest record / transcript sent",
        "run output (the transcript, once)",
        "output bytes / message",
    ]
    conv = [
        [
            r["backend"],
            c["messages"],
            c["completions"],
            _kb(c["bytes_per_completion"]),
            "{first} / {last} / {max} B".format(**c["completion_record_bytes"]),
            f"{c['largest_record_share_of_transcript']:.1%}",
            _kb(c["run_output_bytes"]),
            f"{c['run_output_bytes_per_message']:.0f} B",
        ]
        for r in results
        for c in r["conversation"]
    ]
    task_headers = ["backend", "tasks", "bytes / task", "first task's run records", "last task's run records"]
    task_rows = [
        [
            r["backend"],
            t["tasks"],
            _kb(t["bytes_per_task"]),
            _kb(t["first_task_record_bytes"]),
            _kb(t["last_task_record_bytes"]),
        ]
        for r in results
        for t in r["tasks"]
    ]
    size_headers = [
        "backend",
        "crew runs (4 tasks, 8 completions)",
        "on disk after",
        "disk / run",
        "data / run",
    ]
    size_rows = [
        [
            r["backend"],
            r["size"]["runs"],
            f"{r['size']['disk_bytes_after'] / 2**20:.1f} MB",
            _kb(r["size"]["disk_bytes_per_run"]),
            _kb(r["size"]["payload_bytes_per_run"]),
        ]
        for r in results
    ]
    _scale.print_table("Conversation length", conv_headers, conv)
    _scale.print_table("Tasks", task_headers, task_rows)
    _scale.print_table("Database size", size_headers, size_rows)
    return {
        "conversation": _scale.markdown_table(conv_headers, conv),
        "tasks": _scale.markdown_table(task_headers, task_rows),
        "size": _scale.markdown_table(size_headers, size_rows),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--quick", action="store_true", help="20 crew runs for the size")
    args = parser.parse_args(argv)
    runs = 20 if args.quick else args.runs
    print(
        f"Storage: runs of 10/50/200 messages, crews of 1/4/16 tasks, {runs} crew runs ({args.backends})..."
    )
    with overhead._quiet(), serve_in_process(brain, _scale.PORT):
        results = [measure(b, runs) for b in args.backends.split(",")]
    tables = report(results)
    out = _scale.write("storage", {"results": results, "tables": tables})
    print(f"\nWritten to {out}")
    return {"results": results, "tables": tables}


if __name__ == "__main__":
    main()
