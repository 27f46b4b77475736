"""Faults and bad input: a database that restarts or is gone, racing processes, odd values.

Marked ``faults``. By default (and in CI) each fault is tried once, in a
short form; ``CREW_DURABLE_FAULTS=long`` tries each at more points and more
often::

    CREW_DURABLE_FAULTS=long .venv/bin/python -m pytest -m faults -n 0

Postgres faults never touch the shared server on 5432 (other tests use it
at the same time): they run a private throwaway cluster (Debian's
``initdb``/``pg_ctl`` on a free port, as the ``postgres`` user when we run as
root), and restart or stop that one. Without those binaries they skip, or
fail under ``CREW_DURABLE_REQUIRE_POSTGRES=1``.

Elsewhere: a 500 answered twice and then a success under a retrying
``StepConfig`` is ``test_retries.py``; a 401 recorded and replayed with its
type and message, in this process and a new one, with no key stored, is
``test_error_types.py`` and ``test_secrets.py``.
"""

from __future__ import annotations

import contextlib
import datetime
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dbos import SetWorkflowID
from pydantic import BaseModel

from crew_durable import CrewClient, NotRecoverableError
from tests.support import harness, ledger
from tests.support.apps import echo, relay
from tests.support.cassettes import FAKE_PORT
from tests.support.databases import REQUIRE_POSTGRES, Database
from tests.support.processes import Harness
from tools.fake_openai import FakeOpenAI, serve

pytestmark = pytest.mark.faults

LONG = os.environ.get("CREW_DURABLE_FAULTS") == "long"
RELAY_REQUESTS = 6
"""Completions of one uninterrupted relay kickoff: two per task."""


# -- a private Postgres cluster, ours to restart ----------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivatePostgres:
    """A throwaway Postgres cluster in a temporary directory, on a free port, trust auth."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="crew_durable_pg_"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:  # initdb refuses to run as root
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        self.start()

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if completed.returncode != 0:
            raise RuntimeError(f"{program} failed: {completed.stdout}\n{completed.stderr}")

    def _pg_ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options, "-w", *args)

    def start(self) -> None:
        self._pg_ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "stop")

    def restart(self) -> None:
        self._pg_ctl("-m", "fast", "restart")

    def create(self) -> Database:
        name = f"crew_durable_fault_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return Database("postgres", self.url(name), name)

    def url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        message = "no Postgres server binaries (/usr/lib/postgresql/*/bin/initdb) for a private cluster"
        if REQUIRE_POSTGRES:
            pytest.fail(f"{message}, and CREW_DURABLE_REQUIRE_POSTGRES=1 requires them.")
        pytest.skip(message)
    cluster = PrivatePostgres(Path(found[-1]).parent)
    try:
        yield cluster
    finally:
        cluster.destroy()


# -- driving processes ----------------------------------------------------------------


def _finish(processes: Harness, mode: str, app: str, scenario: str, run_id: str) -> tuple[int, str]:
    """Run a harness process to its end (killed after 120 s if it hangs): its exit status and stderr."""
    pid, _, err = processes._spawn([mode, app, scenario, run_id], processes._env())
    watchdog = threading.Timer(120, os.kill, args=(pid, signal.SIGKILL))
    watchdog.start()
    try:
        status = processes._wait(pid)
    finally:
        watchdog.cancel()
    return status, err.read_text()


def _brain_with(
    on_request: Callable[[int], None], brain: Callable[[dict[str, Any]], dict[str, Any]] = relay.brain
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """``brain``, calling ``on_request(n)`` first for the n-th request (while it is in flight)."""
    count = 0
    lock = threading.Lock()

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        nonlocal count
        with lock:
            count += 1
            number = count
        on_request(number)
        return brain(body)

    return answer


def _assert_relay_ran_once(processes: Harness, server: FakeOpenAI, runs: int = 1, in_flight: int = 0) -> None:
    """Every completion asked once (plus those in flight at a kill), every tool call made once."""
    asked = [
        (relay.stage_of(body), sum(1 for m in body["messages"] if m["role"] == "tool"))
        for body in server.requests
    ]
    assert len(server.requests) == runs * RELAY_REQUESTS + in_flight, (
        f"requests (stage, tool results): {asked}"
    )
    assert ledger.count(processes.ledger, "act") == runs * len(relay.STAGES)
    for stage in relay.STAGES:
        assert ledger.count_where(processes.ledger, tool="act", stage=stage) == runs


# -- Postgres restarted, stopped, unreachable ------------------------------------------


RESTART_POINTS = [1, 2, 3, 4, 5, 6] if LONG else [3]


@pytest.mark.parametrize("at_request", RESTART_POINTS)
def test_postgres_restarted_mid_crew_run_loses_and_repeats_nothing(
    private_postgres: PrivatePostgres, tmp_path: Path, fixed_ports: None, at_request: int
) -> None:
    """Postgres restarts while the n-th completion is in flight; DBOS waits for it and goes on."""
    database = private_postgres.create()
    processes = Harness(database, tmp_path, env={harness.LIVE: "1"})
    restarts: list[float] = []

    def restart_at(number: int) -> None:
        if number == at_request:
            started = time.monotonic()
            private_postgres.restart()
            restarts.append(time.monotonic() - started)

    run_id = f"relay-{uuid.uuid4()}"
    with serve(_brain_with(restart_at), port=FAKE_PORT) as server:
        status, stderr = _finish(processes, "run", "relay", "kickoff", run_id)
        # Whether the first process finished or failed, the next launch ends the run.
        report = processes.run("recover", "relay", "kickoff", run_id)

    assert restarts, "Postgres was not restarted"
    assert status == 0, f"the run did not survive the restart:\n{stderr[-4000:]}"
    assert report["result"] == relay.EXPECTED
    _assert_relay_ran_once(processes, server)


@pytest.mark.skipif(not LONG, reason="long form only (CREW_DURABLE_FAULTS=long)")
def test_postgres_down_for_seconds_mid_run_pauses_the_run(
    private_postgres: PrivatePostgres, tmp_path: Path, fixed_ports: None
) -> None:
    database = private_postgres.create()
    processes = Harness(database, tmp_path, env={harness.LIVE: "1"})

    def outage(number: int) -> None:
        if number == 4:
            private_postgres.stop()
            threading.Timer(5, private_postgres.start).start()

    run_id = f"relay-{uuid.uuid4()}"
    with serve(_brain_with(outage), port=FAKE_PORT) as server:
        status, stderr = _finish(processes, "run", "relay", "kickoff", run_id)
        report = processes.run("recover", "relay", "kickoff", run_id)

    assert status == 0, stderr[-4000:]
    assert report["result"] == relay.EXPECTED
    _assert_relay_ran_once(processes, server)


def test_postgres_unreachable_at_launch_is_a_clear_error_and_the_next_launch_recovers(
    private_postgres: PrivatePostgres, tmp_path: Path, fixed_ports: None
) -> None:
    database = private_postgres.create()
    processes = Harness(database, tmp_path, env={harness.LIVE: "1"})
    release = threading.Event()

    def hold_the_third(number: int) -> None:
        if number == 3:
            release.wait(60)  # in flight until the process is killed

    run_id = f"relay-{uuid.uuid4()}"
    with serve(_brain_with(hold_the_third), port=FAKE_PORT) as server:
        try:
            assert processes.run_and_kill_when(
                "relay", "kickoff", run_id, lambda: len(server.requests) >= 3
            ), "the run ended before its kill point"
        finally:
            release.set()
        private_postgres.stop()
        try:
            started = time.monotonic()
            status, stderr = _finish(processes, "recover", "relay", "kickoff", run_id)
            seconds = time.monotonic() - started
        finally:
            private_postgres.start()
        report = processes.run("recover", "relay", "kickoff", run_id)

    assert status != 0
    errors = [line for line in stderr.splitlines() if line.startswith("sqlalchemy.exc.OperationalError")]
    where = f'connection to server at "127.0.0.1", port {private_postgres.port} failed: Connection refused'
    assert errors and all(where in error for error in errors)
    assert seconds < 30
    assert report["result"] == relay.EXPECTED
    # The completion in flight at the kill had no recorded answer, so it was asked again; nothing else.
    _assert_relay_ran_once(processes, server, in_flight=1)


# -- racing processes, a shared SQLite file ------------------------------------------


def test_two_processes_starting_the_same_run_id_at_once_make_one_run(
    system_database: Database, tmp_path: Path, fixed_ports: None
) -> None:
    processes = Harness(system_database, tmp_path, env={harness.LIVE: "1"})
    run_id = f"relay-{uuid.uuid4()}"
    with serve(relay.brain, port=FAKE_PORT) as server:
        # Two live processes have executor ids of their own, as DBOS requires (``crew-durable worker``
        # gives each a slot of its own); under one id, the second's launch would resume the first's run.
        started = [
            processes._spawn(
                ["run", "relay", "kickoff", run_id], {**processes._env(), "DBOS__VMID": f"racer-{n}"}
            )
            for n in range(2)
        ]
        statuses = [processes._wait(pid) for pid, _, _ in started]
        reports = [json.loads(out.read_text().strip().splitlines()[-1]) for _, out, _ in started]

    assert statuses == [0, 0], [err.read_text()[-3000:] for _, _, err in started]
    assert reports[0]["result"] == reports[1]["result"] == relay.EXPECTED
    _assert_relay_ran_once(processes, server)  # no completion paid twice, no tool call made twice
    client = CrewClient(system_database.url)
    assert [run.run_id for run in client.runs() if run.run_id == run_id] == [run_id]


SQLITE_PROCESSES = 6 if LONG else 2


def test_one_sqlite_file_shared_by_several_processes(tmp_path: Path, fixed_ports: None) -> None:
    database = Database("sqlite", f"sqlite:///{tmp_path / 'shared.sqlite'}", "shared")
    processes = Harness(database, tmp_path, env={harness.LIVE: "1"})
    killed_id = f"relay-killed-{uuid.uuid4()}"

    run_ids = [f"relay-{n}-{uuid.uuid4()}" for n in range(SQLITE_PROCESSES)]
    with serve(relay.brain, port=FAKE_PORT) as server:
        # One run killed part-way, while the others run in processes of their own on the same file.
        processes.run_and_kill_when("relay", "kickoff", killed_id, lambda: len(server.requests) >= 2)
        started = [
            processes._spawn(
                ["run", "relay", "kickoff", run_id], {**processes._env(), "DBOS__VMID": f"runner-{n}"}
            )
            for n, run_id in enumerate(run_ids)
        ]
        statuses = [processes._wait(pid) for pid, _, _ in started]
        recovered = processes.run("recover", "relay", "kickoff", killed_id)
        asked = len(server.requests)

    assert statuses == [0] * SQLITE_PROCESSES, [err.read_text()[-3000:] for _, _, err in started]
    for _, out, _ in started:
        assert json.loads(out.read_text().strip().splitlines()[-1])["result"] == relay.EXPECTED
    assert recovered["result"] == relay.EXPECTED
    runs = SQLITE_PROCESSES + 1
    # The killed run may have had a completion in flight, asked again once on recovery.
    assert runs * RELAY_REQUESTS <= asked <= runs * RELAY_REQUESTS + 1
    for stage in relay.STAGES:
        assert ledger.count_where(processes.ledger, tool="act", stage=stage) in (runs, runs + 1)
    assert ledger.count(processes.ledger, "act") <= runs * len(relay.STAGES) + 1


# -- bad input ---------------------------------------------------------------------------


UNICODE = 'ünïcödé ✓ 中文 🚀 \u200d👩\u200d💻 "quotes" \\ back'


@pytest.fixture
def echo_model(launched: Database, fixed_ports: None) -> Iterator[FakeOpenAI]:
    with serve(echo.brain, port=FAKE_PORT) as server:
        yield server


def _kickoff_twice(topic: str, server: FakeOpenAI) -> tuple[Any, Any, int]:
    """A kickoff, and the same run id again: both outputs, and the requests the second one made."""
    run_id = f"echo-{uuid.uuid4()}"
    with SetWorkflowID(run_id):
        first = echo.crew.kickoff(inputs={"topic": topic})
    asked = len(server.requests)
    with SetWorkflowID(run_id):
        second = echo.crew.kickoff(inputs={"topic": topic})
    return first, second, len(server.requests) - asked


def test_unicode_and_emoji_in_inputs_and_outputs_round_trip(
    launched: Database, echo_model: FakeOpenAI
) -> None:
    first, second, asked_again = _kickoff_twice(UNICODE, echo_model)

    assert first.raw == f"Echo of {UNICODE} 🚀: {len(f'page about {UNICODE}')},{len(f'blob about {UNICODE}')}"
    assert second.raw == first.raw and asked_again == 0
    assert UNICODE in echo_model.requests[0]["messages"][1]["content"]


def test_five_megabyte_tool_results_are_recorded_and_replayed(
    launched: Database, echo_model: FakeOpenAI, side_effects: Path
) -> None:
    first, second, asked_again = _kickoff_twice("big", echo_model)

    assert first.raw.startswith("Echo of big 🚀")
    assert second.raw == first.raw and asked_again == 0
    assert ledger.count(side_effects, "fetch_page") == ledger.count(side_effects, "fetch_blob") == 1


def test_empty_tool_results_work_and_an_empty_answer_fails_as_in_crewai(
    launched: Database, echo_model: FakeOpenAI
) -> None:
    first, second, asked_again = _kickoff_twice("empty", echo_model)
    assert first.raw == "Echo of empty 🚀: 0,0" and second.raw == first.raw and asked_again == 0

    run_id = f"echo-{uuid.uuid4()}"
    with SetWorkflowID(run_id), pytest.raises(ValueError, match="None or empty") as raised:
        echo.crew.kickoff(inputs={"topic": "silent"})
    asked = len(echo_model.requests)
    with SetWorkflowID(run_id), pytest.raises(ValueError, match="None or empty") as again:
        echo.crew.kickoff(inputs={"topic": "silent"})
    assert str(again.value) == str(raised.value) and len(echo_model.requests) == asked


class Topic(BaseModel):
    name: str


@pytest.mark.parametrize(
    ("value", "named"), [(datetime.datetime(2026, 12, 3, 9, 30), "datetime"), (Topic(name="x"), "Topic")]
)
def test_kickoff_inputs_that_are_not_json_are_refused_naming_the_value(
    launched: Database, echo_model: FakeOpenAI, value: Any, named: str
) -> None:
    with pytest.raises(NotRecoverableError, match=rf"crew 'echo'.*\b{named}\b.*not JSON serializable"):
        echo.crew.kickoff(inputs={"topic": value})
    assert echo_model.requests == []  # refused before anything ran


@pytest.mark.skipif(not LONG, reason="long form only (CREW_DURABLE_FAULTS=long)")
def test_unicode_run_killed_in_its_tool_recovers_with_the_same_output(
    system_database: Database, tmp_path: Path, fixed_ports: None
) -> None:
    processes = Harness(system_database, tmp_path, env={harness.LIVE: "1"})
    run_id = f"echo-{uuid.uuid4()}"
    with serve(echo.brain, port=FAKE_PORT) as server:
        uninterrupted = processes.run("run", "echo", "unicode", f"echo-{uuid.uuid4()}")
        processes.run_until_killed("echo", "unicode", run_id, pause_in_tool="fetch_page")
        recovered = processes.run("recover", "echo", "unicode", run_id)

    assert recovered["result"] == uninterrupted["result"]
    assert UNICODE in recovered["result"]["raw"]
    assert len(server.requests) == 4  # two completions per run: none asked twice
    assert ledger.count(processes.ledger, "fetch_page") == 2  # once per run (the kill came before its record)
