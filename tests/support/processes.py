"""Drive the harness from tests: start, pause, SIGKILL, recover."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import harness, kill_points, ledger
from tests.support.cassettes import ROOT
from tests.support.databases import Database


@dataclass
class Harness:
    database: Database
    directory: Path
    env: dict[str, str] = field(default_factory=dict)

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
        return {
            **os.environ,
            "DBOS_SYSTEM_DATABASE_URL": self.database.url,
            ledger.ENV: str(self.ledger),
            harness.REQUEST_LOG: str(self.request_log),
            kill_points.PAUSE_MARKER: str(self.marker),
            **self.env,
        }

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
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.harness", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while not (self.marker.exists() and also_wait_for()):
            if process.poll() is not None:
                raise AssertionError(f"harness exited before pausing:\n{process.stderr.read()[-4000:]}")
            if time.monotonic() > deadline:
                process.kill()
                raise AssertionError("harness never reached its kill point")
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL
        self.marker.unlink()

    def run(self, mode: str, app: str, scenario: str, workflow_id: str) -> dict[str, Any]:
        completed = subprocess.run(
            [sys.executable, "-m", "tests.support.harness", mode, app, scenario, workflow_id],
            cwd=ROOT,
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=180,
        )
        if completed.returncode != 0:
            raise AssertionError(f"harness {mode} failed:\n{completed.stderr[-6000:]}")
        report: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
        return report

    def request_times(self) -> list[float]:
        """When each request was answered, across every process so far, killed ones included."""
        if not self.request_log.exists():
            return []
        return [float(line.split()[0]) for line in self.request_log.read_text().splitlines()]

    def requests(self) -> int:
        return len(self.request_times())
