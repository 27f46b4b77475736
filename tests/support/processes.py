"""Drive test processes: start, pause, SIGKILL, recover.

Two ways, sharing their machinery with :mod:`crew_durable.testing`:

- :func:`crash_tester`: the public ``crew_durable.testing.CrashTester`` set
  up for the test apps (cassette, ledger, apps preloaded in its fork
  server). New crash tests use it, as users do.
- :class:`Harness`: the older app/scenario harness (``harness.py``), whose
  processes come from ``forkserver.py``: real, separate processes that start
  in a fraction of a second because crewAI is already imported in the
  process they are forked from.
"""

from __future__ import annotations

import atexit
import json
import os
import pkgutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbos import DBOSClient

import tests.support.apps as apps
from crew_durable.testing import CrashTester, _alive
from tests.support import harness, kill_points, ledger
from tests.support.cassettes import ROOT, replay
from tests.support.databases import Database
from tests.support.steps import BOOKKEEPING

CASSETTE = "CREW_DURABLE_TEST_CASSETTE"
"""Environment: the project cassette each crash-test process replays (see :func:`crash_tester`)."""


def run_python(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a new interpreter at the project root; it must succeed (its stderr says why not)."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def last_json(done: subprocess.CompletedProcess[str]) -> Any:
    """The JSON report a script printed last."""
    return json.loads(done.stdout.strip().splitlines()[-1])


def _preloadable_apps() -> tuple[str, ...]:
    """The test apps a fork server may import (not those that open files at import)."""
    return tuple(
        f"{apps.__name__}.{module.name}"
        for module in pkgutil.iter_modules(apps.__path__)
        if "FORK_SERVER = False" not in Path(apps.__path__[0], f"{module.name}.py").read_text()
    )


def cassette_from_environment() -> AbstractContextManager[Any]:
    """The ``around`` of :func:`crash_tester`: replay the cassette ``$CREW_DURABLE_TEST_CASSETTE``."""
    return replay(os.environ[CASSETTE])


def crash_tester(database: Database, directory: Path, cassette: str, **options: Any) -> CrashTester:
    """A :class:`crew_durable.testing.CrashTester` for the test apps.

    On ``database``, its files in ``directory``, each process replaying the
    project cassette ``cassette`` (e.g. ``"newsroom.kickoff"``) from before
    DBOS launches, the apps' side effects in ``directory / "ledger.jsonl"``,
    and the apps preloaded in its fork server.
    """
    env = {CASSETTE: cassette, ledger.ENV: str(directory / "ledger.jsonl"), **options.pop("env", {})}
    return CrashTester(
        database_url=database.url,
        directory=directory,
        env=env,
        around=f"{__name__}:cassette_from_environment",
        fork_server=True,
        preload=_preloadable_apps(),
        **options,
    )


class ForkServer:
    """The session's fork server, started on first use."""

    _instance: ForkServer | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.forkserver"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._request_line() == {"ready": True}
        atexit.register(self._process.kill)

    @classmethod
    def get(cls) -> ForkServer:
        with cls._lock:
            if cls._instance is None or cls._instance._process.poll() is not None:
                cls._instance = cls()
            return cls._instance

    def _request_line(self, request: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        if request is not None:
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
        reply: dict[str, Any] = json.loads(self._process.stdout.readline())
        return reply

    def spawn(self, args: list[str], env: dict[str, str], out: Path, err: Path) -> int:
        with self._lock:
            reply = self._request_line({"spawn": args, "env": env, "out": str(out), "err": str(err)})
        return int(reply["pid"])

    def wait(self, pid: int) -> int:
        with self._lock:
            return int(self._request_line({"wait": pid})["status"])


@dataclass
class Harness:
    """Processes of one test: they share the system database, ledger and request log.

    With ``fresh``, every process is a new interpreter rather than a fork, for
    apps that open files at import (crewAI memory); they share a crewAI
    storage directory of the test's own, as the processes of one deployment do.
    """

    database: Database
    directory: Path
    env: dict[str, str] = field(default_factory=dict)
    fresh: bool = False
    _runs: int = 0
    _children: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def ledger(self) -> Path:
        return self.directory / "ledger.jsonl"

    @property
    def request_log(self) -> Path:
        return self.directory / "requests.log"

    @property
    def marker(self) -> Path:
        return self.directory / "paused"

    def _env(self) -> dict[str, str]:
        storage = {"CREWAI_STORAGE_DIR": str(self.directory / "crewai-storage")} if self.fresh else {}
        return {
            **storage,
            "DBOS_SYSTEM_DATABASE_URL": self.database.url,
            ledger.ENV: str(self.ledger),
            harness.REQUEST_LOG: str(self.request_log),
            kill_points.PAUSE_MARKER: str(self.marker),
            **self.env,
        }

    def _spawn(self, args: list[str], env: dict[str, str]) -> tuple[int, Path, Path]:
        self._runs += 1
        out = self.directory / f"run{self._runs}.out"
        err = self.directory / f"run{self._runs}.err"
        if not self.fresh:
            return ForkServer.get().spawn(args, env, out, err), out, err
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.support.harness", *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=out.open("wb"),
            stderr=err.open("wb"),
        )
        self._children[child.pid] = child
        return child.pid, out, err

    def _wait(self, pid: int) -> int:
        child = self._children.pop(pid, None)
        return child.wait() if child is not None else ForkServer.get().wait(pid)

    def run_until_killed(
        self,
        app: str,
        scenario: str,
        workflow_id: str,
        pause_at_request: int | None = None,
        pause_in_tool: str | None = None,
        also_wait_for: Callable[[], bool] = lambda: True,
    ) -> None:
        """Run a scenario and SIGKILL it at its kill point.

        The kill point is the ``pause_at_request``-th request (in flight), or
        the start of the first call of the tool named ``pause_in_tool``.
        """
        args = ["run", app, scenario, workflow_id]
        if pause_at_request is not None:
            args.append(str(pause_at_request))
        env = self._env()
        if pause_in_tool is not None:
            env[kill_points.PAUSE_IN_TOOL] = pause_in_tool
        pid, _, err = self._spawn(args, env)
        deadline = time.monotonic() + 120
        while not (self.marker.exists() and also_wait_for()):
            if not _alive(pid):
                status = self._wait(pid)
                raise AssertionError(
                    f"harness exited ({status}) before its kill point:\n{err.read_text()[-4000:]}"
                )
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                raise AssertionError(f"harness never reached its kill point:\n{err.read_text()[-4000:]}")
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
        status = self._wait(pid)
        assert status == -signal.SIGKILL, (
            f"harness exited with {status} before its kill point:\n{err.read_text()[-4000:]}"
        )
        self.marker.unlink()

    def run_and_kill_after(self, app: str, scenario: str, workflow_id: str, seconds: float) -> bool:
        """Run a scenario and SIGKILL it ``seconds`` after it started; whether it was still running."""
        deadline = time.monotonic() + seconds
        return self.run_and_kill_when(app, scenario, workflow_id, lambda: time.monotonic() >= deadline)

    def run_and_kill_when(
        self, app: str, scenario: str, workflow_id: str, now: Callable[[], bool], mode: str = "run"
    ) -> bool:
        """Run (or recover) a scenario and SIGKILL it once ``now()`` is true; whether it was still running."""
        pid, _, _ = self._spawn([mode, app, scenario, workflow_id], self._env())
        while _alive(pid) and not now():
            time.sleep(0.005)
        running = _alive(pid)
        if running:
            os.kill(pid, signal.SIGKILL)
        self._wait(pid)
        return running

    def run(self, mode: str, app: str, scenario: str, workflow_id: str) -> dict[str, Any]:
        pid, out, err = self._spawn([mode, app, scenario, workflow_id], self._env())
        status = self._wait(pid)
        if status != 0:
            raise AssertionError(f"harness {mode} exited with {status}:\n{err.read_text()[-6000:]}")
        report: dict[str, Any] = json.loads(out.read_text().strip().splitlines()[-1])
        return report

    def run_in_new_interpreter(self, mode: str, app: str, scenario: str, workflow_id: str) -> dict[str, Any]:
        """Like :meth:`run`, in a new Python that has imported nothing but what the mode imports."""
        completed = subprocess.run(
            [sys.executable, "-m", "tests.support.harness", mode, app, scenario, workflow_id],
            cwd=ROOT,
            env={**os.environ, **self._env()},
            capture_output=True,
            text=True,
            timeout=180,
        )
        if completed.returncode != 0:
            raise AssertionError(f"harness {mode} failed:\n{completed.stderr[-6000:]}")
        report: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
        return report

    def recorded_outputs(self, workflow_id: str) -> list[Any]:
        """The outputs of the steps DBOS has checkpointed for a workflow so far."""
        client = DBOSClient(system_database_url=self.database.url)
        try:
            steps = client.list_workflow_steps(workflow_id)
            return [step["output"] for step in steps if step["function_name"] not in BOOKKEEPING]
        finally:
            client.destroy()

    def request_times(self) -> list[float]:
        """When each request was answered, across every process so far, killed ones included."""
        if not self.request_log.exists():
            return []
        return [float(line.split()[0]) for line in self.request_log.read_text().splitlines()]

    def requests(self) -> int:
        return len(self.request_times())
