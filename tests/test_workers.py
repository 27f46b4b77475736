"""Crew runs on DBOS queues across worker processes, enqueued from a process without the crew code."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from dbos import DBOSClient

from crew_durable import CrewClient
from tests.support import ledger
from tests.support.apps import fleet
from tests.support.cassettes import FAKE_PORT
from tests.support.databases import Database
from tests.support.workers import Worker
from tools.fake_openai import FakeOpenAI, serve

RUNS = 60


@pytest.fixture
def model(fixed_ports: None) -> Iterator[FakeOpenAI]:
    with serve(fleet.brain, port=FAKE_PORT) as server:
        yield server


def _worker(
    database: Database, directory: Path, name: str, version_2: bool = False, **settings: object
) -> Worker:
    env = {ledger.ENV: str(directory / "ledger.jsonl"), "CREWAI_STORAGE_DIR": str(directory / "crewai")}
    if version_2:
        env["FLEET_VERSION_2"] = "1"
    return Worker(
        "tests.support.apps.fleet", "fleet", database.url, directory / f"{name}.log", env, **settings
    )  # type: ignore[arg-type]


@pytest.mark.parametrize("system_database", ["postgres"], indirect=True)
def test_three_workers_run_sixty_runs_once_each_across_a_worker_kill(
    system_database: Database, tmp_path: Path, model: FakeOpenAI
) -> None:
    workers = [_worker(system_database, tmp_path, f"worker{n}").start() for n in range(3)]
    ids = [worker.wait_until_serving() for worker in workers]
    assert len(set(ids)) == 3  # default ids: one slot each on this host
    with CrewClient(system_database.url) as client:
        runs = [f"fleet-{uuid.uuid4().hex[:6]}-{n}" for n in range(RUNS)]
        for n, run_id in enumerate(runs):
            client.enqueue("fleet", {"order": f"o{n}"}, queue_name="fleet", run_id=run_id)
        client.enqueue("fleet", {"order": "o0"}, queue_name="fleet", run_id=runs[0])  # the same run again

        dbos = DBOSClient(system_database_url=system_database.url)
        victim = workers[1]
        try:
            while not dbos.list_workflows(
                status="PENDING", executor_id=victim.executor_id, workflow_ids=runs
            ):
                time.sleep(0.01)
            victim.kill()  # in the middle of its runs
            in_flight = {
                w.workflow_id
                for w in dbos.list_workflows(
                    status="PENDING", executor_id=victim.executor_id, workflow_ids=runs
                )
            }
            # It comes back with new code (a deploy): the runs it left pending still finish.
            restarted = _worker(system_database, tmp_path, "worker1-again", version_2=True).start()
            assert restarted.wait_until_serving() == victim.executor_id  # its slot: it resumes its runs
            twin = _worker(system_database, tmp_path, "twin", executor_id=workers[0].executor_id).start()
            assert twin.process is not None and twin.process.wait(60) == 1  # an id a live worker holds
            assert "is held by a live worker" in twin.log.read_text()
            outputs = [client.result(run_id).raw for run_id in runs]
            statuses = dbos.list_workflows(workflow_ids=runs, load_input=False, load_output=False)
        finally:
            dbos.destroy()
            exits = [worker.stop() for worker in (workers[0], workers[2], restarted)]

    assert outputs == [f"Shipped o{n}: track-o{n}" for n in range(RUNS)]  # each its own output
    # (the deploy rule: dbos_config pins the application version to the record format, so the
    # new code's DBOS, whose own version would hash the new workflow's source, resumes them)
    assert (
        "crew-durable worker" in restarted.log.read_text()
        and "(version crew-durable-r2)" in restarted.log.read_text()
    )
    assert len(statuses) == RUNS and {s.status for s in statuses} == {"SUCCESS"}  # one run per id
    shipped = Counter(entry["order"] for entry in ledger.entries(tmp_path / "ledger.jsonl"))
    assert set(shipped) == {f"o{n}" for n in range(RUNS)}
    repeated = {order: count for order, count in shipped.items() if count > 1}
    orders_in_flight = {f"o{runs.index(run_id)}" for run_id in in_flight}
    assert set(repeated) <= orders_in_flight  # only a ship step in flight at the kill ran again
    spread = Counter(s.executor_id for s in statuses)
    assert in_flight and all(spread[worker.executor_id] for worker in (workers[0], workers[2])), spread
    # (the killed worker's runs were re-enqueued when it came back, and resumed by whichever worker was free)
    assert exits == [0, 0, 0]  # SIGTERM: a clean shutdown
    extra = sum(repeated.values()) - len(repeated)
    print(
        f"\n{RUNS} runs on 3 workers: {dict(spread)}; in flight at kill: {len(in_flight)}; repeats: {extra}"
    )
