"""Crash a durable crew in the middle of a run, restart it, and see what was paid for twice.

    ./dev demo

1. A worker process kicks off the newsroom crew (examples/newsroom.py):
   a researcher, then a reporter who writes and publishes an article.
2. As soon as the reporter has published the article, the demo kills the
   worker with SIGKILL, while the reporter's last completion is in flight.
3. A second worker starts, defines the same crew, and calls DBOS.launch():
   DBOS resumes the interrupted run from its checkpoints.
4. The demo lists every step of the run and where it came from.

Without an OpenAI key it runs offline, replaying recorded completions
(cassettes/demo.kickoff.yaml) with a simulated model latency; with
OPENAI_API_KEY set it calls OpenAI. The system database is a fresh SQLite
file, or the Postgres in DBOS_SYSTEM_DATABASE_URL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

INPUTS = {"topic": "durable AI agents"}
CASSETTE = Path(__file__).resolve().parents[1] / "cassettes" / "demo.kickoff.yaml"
SIMULATED_LATENCY = 0.7  # seconds per offline completion


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        return worker(sys.argv[2], sys.argv[3])
    workdir = Path(tempfile.mkdtemp(prefix="crew-durable-demo-"))
    database = os.environ.get("DBOS_SYSTEM_DATABASE_URL") or f"sqlite:///{workdir / 'demo.sqlite'}"
    offline = not os.environ.get("OPENAI_API_KEY")
    workflow_id = f"newsroom-{uuid.uuid4().hex[:8]}"
    env = {
        "CREWAI_DISABLE_TELEMETRY": "true",  # keep the demo local and quiet
        "OTEL_SDK_DISABLED": "true",
        "CREWAI_TRACING_ENABLED": "false",
        **os.environ,
        "DBOS_SYSTEM_DATABASE_URL": database,
        "DEMO_EXECUTOR_ID": f"demo-{workflow_id}",  # this demo's runs only
        "DEMO_WORKDIR": str(workdir),
        "NEWSROOM_PUBLISHED": str(workdir / "published.txt"),
        **({"NEWSROOM_OFFLINE": "1"} if offline else {}),
    }
    print(f"System database: {_redacted(database)}")
    print("Model: " + ("offline replay of recorded completions" if offline else "OpenAI gpt-4o-mini"))
    print(f"Kicking off crew 'newsroom' as workflow {workflow_id} ...")

    first = _start("run", workflow_id, env, workdir / "run1.log")
    started = time.monotonic()
    _wait_until_published(database, workflow_id, first)
    first.send_signal(signal.SIGKILL)
    first.wait()
    print(f"Article published; killed the worker with SIGKILL after {time.monotonic() - started:.1f} s.\n")

    print("Starting a new worker: it defines the same crew and calls DBOS.launch() ...")
    second = _start("recover", workflow_id, env, workdir / "run2.log")
    second.wait(timeout=300)
    if second.returncode != 0:
        sys.exit(f"The recovering worker failed; see {workdir / 'run2.log'}")
    report = json.loads((workdir / "recovered.json").read_text())
    _show(database, workflow_id, report, workdir)


def worker(mode: str, workflow_id: str) -> None:
    """A worker process: define the crew, launch DBOS, run or resume the kickoff."""
    from dbos import DBOS, SetWorkflowID

    from crew_durable import dbos_config
    from examples.newsroom import newsroom

    workdir = Path(os.environ["DEMO_WORKDIR"])
    DBOS(
        config=dbos_config(
            "crew_durable_demo", executor_id=os.environ["DEMO_EXECUTOR_ID"], log_level="WARNING"
        )
    )
    with _offline_replay(workdir / f"requests.{mode}.log"):
        DBOS.launch()  # resumes this executor's interrupted runs right away
        launched_at = time.time()
        if mode == "recover":
            DBOS.retrieve_workflow(workflow_id).get_result(polling_interval_sec=0.1)
        with SetWorkflowID(workflow_id):  # already finished when recovering: returns the record
            output = newsroom.kickoff(inputs=INPUTS)
    report = {"launched_at": launched_at, "raw": output.raw, "usage": output.token_usage.model_dump()}
    (workdir / "recovered.json").write_text(json.dumps(report))
    DBOS.destroy(destroy_registry=False)


def _start(mode: str, workflow_id: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "examples.crash_and_recover", "--worker", mode, workflow_id]
    root = Path(__file__).resolve().parents[1]
    return subprocess.Popen(command, cwd=root, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _wait_until_published(database: str, workflow_id: str, process: subprocess.Popen[bytes]) -> None:
    """Poll the system database until the second task has checkpointed its publishing step."""
    from dbos import DBOSClient

    client = None
    try:
        while True:
            if process.poll() is not None:
                sys.exit("The worker exited before publishing; see its log.")
            try:
                client = client or DBOSClient(system_database_url=database)
                tasks = _task_ids(client, workflow_id)
                steps = client.list_workflow_steps(tasks[1]) if len(tasks) > 1 else []
                if any(step["function_name"] == "publish_article" for step in steps):
                    return
            except Exception:  # the worker has not created the database yet
                client = None
            time.sleep(0.05)
    finally:
        if client is not None:
            client.destroy()


def _task_ids(client: Any, workflow_id: str) -> list[str]:
    try:
        steps = client.list_workflow_steps(workflow_id)
    except Exception:
        return []  # the workflow row does not exist yet
    return list(dict.fromkeys(s["child_workflow_id"] for s in steps if s["child_workflow_id"]))


def _show(database: str, workflow_id: str, report: dict[str, Any], workdir: Path) -> None:
    from dbos import DBOSClient

    client = DBOSClient(system_database_url=database)
    restarted = report["launched_at"]
    print(f"\nSteps of workflow {workflow_id} (the kickoff) and its task workflows:\n")
    print(f"  {'step':<44} {'where it came from'}")
    for number, task_id in enumerate(_task_ids(client, workflow_id), start=1):
        print(f"  task {number} - workflow {task_id}")
        for step in client.list_workflow_steps(task_id):
            if step["function_name"] == "crew_durable.stream_event":
                continue  # an event of the run's live stream, not work
            started = (step["started_at_epoch_ms"] or 0) / 1000
            origin = (
                "checkpoint, from the killed run" if started < restarted else "ran fresh after the restart"
            )
            print(f"    {step['function_id']:>3}  {step['function_name']:<38} {origin}")
    client.destroy()
    published = (workdir / "published.txt").read_text().splitlines()
    print(f"\nArticles published: {len(published)} ({', '.join(published)})")
    logs = [workdir / f"requests.{mode}.log" for mode in ("run", "recover")]
    if all(log.exists() for log in logs):  # offline: the replay counted the requests
        killed, recovering = (len(log.read_text().splitlines()) for log in logs)
        print(f"LLM requests: {killed} in the killed worker + {recovering} in the recovering one")
        print("  (an uninterrupted run makes 4; only a request in flight at the kill is made twice)")
    print(f"Token usage of the run, replayed steps counted once: {report['usage']['total_tokens']} tokens")
    print(f"\nFinal output:\n{report['raw']}")
    print(f"\nLogs and database: {workdir}")


class _offline_replay:  # noqa: N801 - used as a context manager
    """Offline, serve recorded completions with a simulated latency, logging each request."""

    def __init__(self, log: Path) -> None:
        self._log = log
        self._cassette: Any = None

    def __enter__(self) -> None:
        if not os.environ.get("NEWSROOM_OFFLINE"):
            return
        import vcr
        from vcr.cassette import Cassette

        play_response = Cassette.play_response
        log = self._log

        def slow_play_response(cassette: Cassette, request: Any) -> Any:
            with log.open("a") as requests:
                requests.write(f"{request.method} {request.uri}\n")
            time.sleep(SIMULATED_LATENCY)
            return play_response(cassette, request)

        Cassette.play_response = slow_play_response  # type: ignore[method-assign]
        recorder = vcr.VCR(record_mode="none", match_on=["method", "uri", "body"])
        self._cassette = recorder.use_cassette(str(CASSETTE))
        self._cassette.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self._cassette is not None:
            self._cassette.__exit__(*exc)


def _redacted(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}" if "@" in rest else url


if __name__ == "__main__":
    main()
