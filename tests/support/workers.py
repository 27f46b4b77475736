"""Worker processes for tests and benchmarks: ``python -m crew_durable worker`` as an operator runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.cassettes import ROOT


@dataclass
class Worker:
    """One ``crew-durable worker`` process, its output in a log file."""

    module: str
    queue: str
    database_url: str
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    concurrency: int = 4
    executor_id: str | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        args = [sys.executable, "-m", "crew_durable", "worker", self.module, "--queue", self.queue]
        args += ["--concurrency", str(self.concurrency), "--db", self.database_url]
        if self.executor_id:
            args += ["--executor-id", self.executor_id]
        self.process = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        return self

    def wait_until_serving(self, timeout: float = 60) -> str:
        """The executor id the worker serves under, once it does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log.read_text(errors="replace").splitlines():
                if line.startswith("crew-durable worker ") and " serving queues " in line:
                    self.executor_id = line.split()[2]
                    return self.executor_id
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"the worker exited:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)
        raise AssertionError(f"the worker did not start serving:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as an orchestrator stops a worker; its exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)
