"""Kill the orders crew at random points, recover it, and count every side effect.

    python -m tests.support.chaos --backend postgres --trials 30 --seed 1

Each trial runs the crew (tests/support/apps/orders.py) in a real process and
SIGKILLs it either after a random delay (anywhere: inside a step, between
steps, inside a database write) or inside a tool, just before or just after
its side effect. A delay that lands before the workflow started or after it
finished is drawn again, narrowed, on a new run, so every kill interrupts a
pending workflow. A new process then recovers the run. A trial passes when
the recovered output equals an uninterrupted run's; every completed step of
a keyed tool (reserve_stock, charge_card) has had exactly one effect, even
the step that was in flight at the kill (it ran again with the same key);
and every completed send_email step has sent once, except that the one in
flight at the kill may have sent twice (it has no idempotency key).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dbos import DBOSClient

from tests.support import harness, ledger
from tests.support.databases import Database, create
from tests.support.processes import Harness

TOOL_POINTS = ["stock:before", "stock:after", "charge:before", "charge:after", "email:before", "email:after"]
LATENCY = "0.03"
MAX_ATTEMPTS = 8


@dataclass
class Trial:
    number: int
    kill: str
    killed_mid_run: bool
    output_matches: bool
    keyed_duplicates: int
    keyed_missing: int
    unkeyed_repeats: int
    error: str | None = None

    @property
    def passed(self) -> bool:
        return (
            self.error is None
            and self.output_matches
            and self.keyed_duplicates == 0
            and self.keyed_missing == 0
            and self.unkeyed_repeats <= 1
        )


def reference(database: Database, directory: Path) -> tuple[dict[str, Any], float]:
    """The crew's output when nothing kills it, and how long its process runs.

    It runs twice: the first run also migrates the new database, so the
    second one's duration is what a trial's run takes.
    """
    directory.mkdir(parents=True, exist_ok=True)
    uninterrupted = Harness(database, directory, env={harness.LATENCY: LATENCY})
    first: dict[str, Any] = uninterrupted.run("run", "orders", "kickoff", f"ref-{uuid.uuid4()}")
    started = time.monotonic()
    second = uninterrupted.run("run", "orders", "kickoff", f"ref-{uuid.uuid4()}")
    assert second["result"] == first["result"]
    return first, time.monotonic() - started


def run_trial(
    number: int,
    rng: random.Random,
    database: Database,
    directory: Path,
    expected: dict[str, Any],
    duration: float,
) -> Trial:
    if rng.random() < 0.6:
        trial, workflow_id, kill, mid_run = _kill_after_a_delay(rng, database, directory, duration)
    else:
        directory.mkdir(parents=True)
        trial = Harness(database, directory, env={harness.LATENCY: LATENCY})
        workflow_id = f"orders-{uuid.uuid4()}"
        point = rng.choice(TOOL_POINTS)
        kill = f"in tool at {point}"
        trial.run_until_killed("orders", "kickoff", workflow_id, pause_in_tool=point)
        mid_run = True
    try:
        report = trial.run("recover", "orders", "kickoff", workflow_id)
    except AssertionError as error:
        return Trial(number, kill, mid_run, False, 0, 0, 0, error=str(error)[-2000:])
    keyed_duplicates, keyed_missing, unkeyed_repeats = _count_effects(database, workflow_id, trial.ledger)
    return Trial(
        number,
        kill,
        mid_run,
        report["result"] == expected["result"],
        keyed_duplicates,
        keyed_missing,
        unkeyed_repeats,
    )


def _kill_after_a_delay(
    rng: random.Random, database: Database, directory: Path, duration: float
) -> tuple[Harness, str, str, bool]:
    """SIGKILL a run after a random delay that lands while its workflow is pending.

    How long a process takes to start and to finish varies from run to run,
    so a delay drawn from the reference run's duration can miss the workflow.
    A miss is drawn again between the delays known to be too early and too
    late, on a new run of its own (directory, ledger, workflow id).
    """
    early, late = 0.02, duration
    for attempt in range(1, MAX_ATTEMPTS + 1):
        delay = rng.uniform(early, late)
        trial = Harness(database, directory / f"attempt{attempt}", env={harness.LATENCY: LATENCY})
        trial.directory.mkdir(parents=True)
        workflow_id = f"orders-{uuid.uuid4()}"
        trial.run_and_kill_after("orders", "kickoff", workflow_id, delay)
        status = _workflow_status(database, workflow_id)
        if status == "PENDING":
            return trial, workflow_id, f"after {delay:.2f} s (attempt {attempt})", True
        if status is None:
            early = delay
        else:
            late = delay
    return trial, workflow_id, f"after {delay:.2f} s (attempt {attempt}, {status})", False


def _workflow_status(database: Database, workflow_id: str) -> str | None:
    """The workflow's status as recorded, or None when it was never started."""
    client = DBOSClient(system_database_url=database.url)
    try:
        found = client.list_workflows(workflow_ids=[workflow_id])
    finally:
        client.destroy()
    return found[0].status if found else None


def _count_effects(database: Database, workflow_id: str, ledger_file: Path) -> tuple[int, int, int]:
    """Per completed tool step: extra and missing effects of the keyed tools, repeated sends."""
    completed = _completed_tool_steps(database, workflow_id)
    entries = ledger.entries(ledger_file)

    def effects(kind: str) -> Counter[tuple[str, int]]:
        return Counter((e["workflow"], e["step"]) for e in entries if e["tool"] == kind)

    duplicates = missing = 0
    for service in ("stock", "charge"):
        per_step = effects(f"{service}_effect")
        duplicates += sum(count - 1 for count in per_step.values())
        missing += len(completed[service] - set(per_step))
    sends = effects("email_sent")
    missing += len(completed["email"] - set(sends))
    return duplicates, missing, sum(count - 1 for count in sends.values())


def _completed_tool_steps(database: Database, workflow_id: str) -> dict[str, set[tuple[str, int]]]:
    """The tool steps each task run recorded as finished, by service, from the database."""
    services = {
        "reserve_stock": "stock",
        "orders.cashier.tool.charge_card": "charge",
        "orders.cashier.tool.send_email": "email",
    }
    completed: dict[str, set[tuple[str, int]]] = {service: set() for service in services.values()}
    client = DBOSClient(system_database_url=database.url)
    try:
        tasks = [
            s["child_workflow_id"] for s in client.list_workflow_steps(workflow_id) if s["child_workflow_id"]
        ]
        for task in dict.fromkeys(tasks):
            for step in client.list_workflow_steps(task):
                service = services.get(step["function_name"])
                if service is not None and step["error"] is None:
                    completed[service].add((task, step["function_id"]))
    finally:
        client.destroy()
    return completed


def run(backend: str, trials: int, seed: int, directory: Path) -> list[Trial]:
    database = create(backend, directory)
    try:
        expected, duration = reference(database, directory / "reference")
        rng = random.Random(seed)
        return [
            run_trial(n, rng, database, directory / f"trial{n}", expected, duration)
            for n in range(1, trials + 1)
        ]
    finally:
        database.drop()


def summary(backend: str, seed: int, results: list[Trial]) -> dict[str, Any]:
    return {
        "backend": backend,
        "seed": seed,
        "trials": len(results),
        "killed_mid_run": sum(t.killed_mid_run for t in results),
        "recovered_with_the_uninterrupted_output": sum(t.output_matches for t in results),
        "keyed_duplicates": sum(t.keyed_duplicates for t in results),
        "missing_effects": sum(t.keyed_missing for t in results),
        "unkeyed_repeats_of_the_step_in_flight": sum(t.unkeyed_repeats for t in results),
        "step_order_or_other_errors": sum(t.error is not None for t in results),
        "passed": sum(t.passed for t in results),
    }


def print_summary(figures: dict[str, Any]) -> None:
    print(
        f"chaos [{figures['backend']}, seed {figures['seed']}]: {figures['trials']} trials, "
        f"{figures['killed_mid_run']} killed mid-run, "
        f"{figures['recovered_with_the_uninterrupted_output']} recovered with the uninterrupted output, "
        f"keyed duplicates = {figures['keyed_duplicates']}, missing effects = {figures['missing_effects']}, "
        f"unkeyed in-flight repeats = {figures['unkeyed_repeats_of_the_step_in_flight']}, "
        f"errors = {figures['step_order_or_other_errors']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="postgres", choices=["sqlite", "postgres"])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crew-durable-chaos-") as tmp:
        results = run(args.backend, args.trials, args.seed, Path(tmp))
    for trial in results:
        print(json.dumps(asdict(trial)))
    print_summary(summary(args.backend, args.seed, results))


if __name__ == "__main__":
    main()
