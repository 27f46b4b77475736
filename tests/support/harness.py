"""Run an app's scenario in a real subprocess that can be killed, and recover it.

    python -m tests.support.harness run APP SCENARIO WORKFLOW_ID [PAUSE_AT_REQUEST]
    python -m tests.support.harness recover APP SCENARIO WORKFLOW_ID
    python -m tests.support.harness recall APP SCENARIO WORKFLOW_ID
    python -m tests.support.harness orphan - - WORKFLOW_ID

``recover`` waits for the run DBOS resumes at launch, then calls the
scenario again under the same id. ``recall`` calls it again right away,
while the recovered run is still going, as an application restarting would.
``orphan`` launches DBOS without importing any app, as a deployment that
dropped the app's agents would, and reports how the recovered run ended.

Both print one JSON line on stdout. The system database comes from
``$DBOS_SYSTEM_DATABASE_URL``. Every request the cassette answers is logged
to ``$HARNESS_REQUEST_LOG`` as it happens, so requests made by a process that
is later killed are still counted. With ``PAUSE_AT_REQUEST`` = n, the process
writes ``$HARNESS_PAUSE_MARKER`` when the n-th request arrives and blocks
there, in flight, waiting for the test to kill it.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from dbos import DBOS, SetWorkflowID
from vcr.cassette import Cassette

from crew_durable import dbos_config
from tests.support.cassettes import played, replay
from tests.support.kill_points import pause
from tests.support.steps import BOOKKEEPING, work_steps

REQUEST_LOG = "HARNESS_REQUEST_LOG"
LATENCY = "HARNESS_LATENCY"
ALREADY_PLAYED = "HARNESS_ALREADY_PLAYED"
LIVE = "HARNESS_LIVE"
"""Set: no cassette; the app's LLM talks to the fake server the test runs on the cassettes' port."""
"""For cassettes matched in order: how many interactions a killed process already used."""
"""Seconds each replayed request takes, as a model would (0 by default)."""
APP_VERSION = "HARNESS_APP_VERSION"
PROMPT_RECOVERY = "HARNESS_PROMPT_RECOVERY"
"""Set to 0: DBOS's own recovery timings, not ``recover_promptly`` (for benchmarks/recovery.py)."""


def _log_and_maybe_pause(pause_at: int | None) -> None:
    original = Cassette.play_response
    lock = threading.Lock()
    answered = 0

    def play_response(self: Cassette, request: Any) -> Any:
        nonlocal answered
        with lock:  # requests can come from several threads at once
            answered += 1
            number = answered
            with open(os.environ[REQUEST_LOG], "a", encoding="utf-8") as log:
                log.write(f"{time.time():.6f} {request.method} {request.uri}\n")
        if number == pause_at:
            pause()
        time.sleep(float(os.environ.get(LATENCY, "0")))
        return original(self, request)

    Cassette.play_response = play_response  # type: ignore[method-assign]


def _last_step_completed_at(workflow_id: str) -> float:
    """When the last step of a workflow, or of any of its children, completed."""
    latest = 0.0
    for step in DBOS.list_workflow_steps(workflow_id):
        if step["child_workflow_id"]:
            latest = max(latest, _last_step_completed_at(step["child_workflow_id"]))
        elif step["completed_at_epoch_ms"]:
            latest = max(latest, step["completed_at_epoch_ms"] / 1000)
    return latest


def workflow_tree(workflow_id: str) -> list[Any]:
    """A workflow's step names, each child workflow's own steps nested under the step that
    started it (DBOS's ``DBOS.getResult`` bookkeeping left out)."""
    tree: list[Any] = []
    for step in DBOS.list_workflow_steps(workflow_id):
        name, child = step["function_name"], step["child_workflow_id"]
        if name not in BOOKKEEPING:
            tree.append([name, workflow_tree(child)] if child else name)
    return tree


@contextmanager
def _live() -> Iterator[Any]:
    yield _NoCassette()


class _NoCassette:
    play_counts: dict[int, int] = {}  # noqa: RUF012  (the server the test runs counts requests)


def _call(scenario: Callable[[], Any]) -> Any:
    return asyncio.run(scenario()) if inspect.iscoroutinefunction(scenario) else scenario()


def _configure() -> None:
    version = os.environ.get(APP_VERSION)
    settings = {"application_version": version} if version else {}
    prompt = os.environ.get(PROMPT_RECOVERY, "1") != "0"
    DBOS(config=dbos_config("crew_durable_harness", prompt_recovery=prompt, **settings))


def orphan(workflow_id: str) -> None:
    _configure()
    DBOS.launch()
    started = time.monotonic()
    report: dict[str, Any] = {}
    try:
        DBOS.retrieve_workflow(workflow_id).get_result(polling_interval_sec=0.05)
    except Exception as error:
        report["error"] = f"{type(error).__name__}: {error}"
    report["seconds"] = time.monotonic() - started
    print(json.dumps(report), flush=True)
    DBOS.destroy(destroy_registry=False)


def main(argv: list[str]) -> None:
    mode, app_name, scenario_name, workflow_id, *rest = argv
    if mode == "orphan":
        return orphan(workflow_id)
    app = importlib.import_module(f"tests.support.apps.{app_name}")
    scenario = app.SCENARIOS[scenario_name]
    _log_and_maybe_pause(int(rest[0]) if rest else None)
    _configure()
    opener = getattr(app, "cassette", None)
    if os.environ.get(LIVE):
        opener = _live
    with opener() if opener else replay(f"{app_name}.{scenario_name}") as cassette:
        for index in range(int(os.environ.get(ALREADY_PLAYED, "0"))):
            cassette.play_counts[index] = 1
        DBOS.launch()  # in recover mode, DBOS resumes the interrupted workflow now
        report: dict[str, Any] = {"launched_at": time.time()}
        if mode == "recover" and DBOS.get_workflow_status(workflow_id) is not None:
            # (Killed before the workflow was created, there is nothing to resume:
            # calling the scenario again starts it, as a restarted app would.)
            started = time.monotonic()
            DBOS.retrieve_workflow(workflow_id).get_result(polling_interval_sec=0.05)
            report["recovery_seconds"] = time.monotonic() - started
            report["requests_before_call"] = played(cassette)
        with SetWorkflowID(workflow_id):
            report["result"] = _call(scenario)
        report["returned_at"] = time.time()
        report["last_step_completed_at"] = _last_step_completed_at(workflow_id)
        report["requests"] = played(cassette)
        steps = work_steps(workflow_id)
        report["steps"] = [step["function_name"] for step in steps]
        report["tree"] = workflow_tree(workflow_id)
        report["step_started_at"] = [(step["started_at_epoch_ms"] or 0) / 1000 for step in steps]
    print(json.dumps(report), flush=True)
    DBOS.destroy(destroy_registry=False)


if __name__ == "__main__":
    main(sys.argv[1:])
