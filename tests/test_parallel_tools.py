"""Parallel native tool calls run concurrently, with step ids in the model's order."""

from __future__ import annotations

import uuid
from pathlib import Path

from dbos import SetWorkflowID

from crew_durable._dbos_internals import RANGE_SIZE
from tests.support import ledger
from tests.support.apps import prices
from tests.support.cassettes import replay
from tests.support.databases import Database
from tests.support.processes import Harness
from tests.support.steps import work_steps

ANSWER = "apple costs $3; banana costs $1; cherry costs $7"


def test_parallel_calls_overlap_yet_are_recorded_in_call_order(
    launched: Database, side_effects: Path
) -> None:
    workflow_id = f"prices-{uuid.uuid4()}"
    with replay("prices.execute_task"), SetWorkflowID(workflow_id):
        assert prices.execute_task() == ANSWER

    steps = work_steps(workflow_id)
    tools = [s for s in steps if s["function_name"] == "fetch_price"]
    assert [s["output"] for s in tools] == ["apple costs $3", "banana costs $1", "cherry costs $7"]
    first = tools[0]["function_id"]
    assert [s["function_id"] for s in tools] == [first, first + RANGE_SIZE, first + 2 * RANGE_SIZE]
    assert [s["function_name"] for s in steps] == ["shopper.llm", *["fetch_price"] * 3, "shopper.llm"]

    runs = ledger.entries(side_effects)
    assert min(runs, key=lambda r: r["finished"])["item"] == "cherry"  # threads finished out of order...
    assert max_concurrency(runs) >= 2  # ...and overlapped


def max_concurrency(runs: list[dict[str, float]]) -> int:
    edges = sorted([(r["started"], 1) for r in runs] + [(r["finished"], -1) for r in runs])
    running = peak = 0
    for _, change in edges:
        running += change
        peak = max(peak, running)
    return peak


def test_a_kill_in_the_middle_of_a_parallel_batch_recovers_cleanly(
    system_database: Database, tmp_path: Path
) -> None:
    harness = Harness(system_database, tmp_path)
    workflow_id = f"prices-{uuid.uuid4()}"

    def siblings_recorded() -> bool:
        outputs = harness.recorded_outputs(workflow_id)
        return all(any(str(o).startswith(f"{item} costs") for o in outputs) for item in ("apple", "cherry"))

    harness.run_until_killed(
        "prices",
        "execute_task",
        workflow_id,
        pause_in_tool="lookup_price:banana",
        also_wait_for=siblings_recorded,
    )
    report = harness.run("recover", "prices", "execute_task", workflow_id)

    assert report["result"] == ANSWER
    assert report["steps"] == ["shopper.llm", *["fetch_price"] * 3, "shopper.llm"]
    executions = {item: ledger.count_where(harness.ledger, item=item) for item in prices.ITEMS}
    assert executions == {"apple": 1, "banana": 1, "cherry": 1}  # banana never finished before the kill
    assert harness.requests() == 2
