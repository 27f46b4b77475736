"""Test that your own crews recover: run one, SIGKILL it at a chosen point, recover it, look.

A crash test runs your crew in a real subprocess against a system database,
kills it with ``SIGKILL`` at the N-th step or inside a named tool, starts a
fresh process on the same database (DBOS resumes the run at launch), and
reports what happened: the output, the steps the run recorded, which step
bodies ran in each process and how many completions each LLM requested::

    from crew_durable.testing import crash_and_recover

    def test_report_crew_recovers(tmp_path):
        report = crash_and_recover("myapp.crews:write_report", kill_in_tool="publish", directory=tmp_path)
        assert report.output["raw"].startswith("Published")        # a CrewOutput, as JSON
        assert report.requests_after_kill == {"report.writer.llm": 1}   # no finished completion again

The *target* is what your application calls to run the crew: a function
without arguments in an importable module, given as ``"module:function"``
or as the function itself, e.g. ``def write_report(): return
report_crew.kickoff(inputs={...})``. Your agents and crews must be defined
at module level (as for any DBOS workflow), and the module must not
configure or launch DBOS itself: each test process does, with
:func:`crew_durable.dbos_config` on the test's database (pass ``config=``
for a config of your own). The target runs under a workflow id the test
chooses (``SetWorkflowID``), so the recovering process calls it again under
the same id and gets the recovered run's result.

The kill points:

- ``kill_at_step=n``: the process stops when the body of its n-th DBOS step
  starts (counted from 1, in the order they start): a completion, a tool
  step (``tool_steps``, ``@DBOS.step`` tools), a memory save, a step of your
  own. That step is in flight: it was not recorded, and the recovered run
  runs it again. Steps replayed from the database are not counted.
- ``kill_in_tool="name"``: the process stops when the tool ``name`` (crewAI's
  tool name) is called, before its body runs (inside its step, for a
  ``tool_steps`` tool). Nothing of that call is recorded: the recovered run
  calls it again. :func:`pause_here` marks a kill point of your own, in any
  code the run reaches, under a name ``kill_in_tool`` can give.

Requests are counted where completions start: each completion step body
(``DBOSLLM``), each attempt of it, in each process. The completion in
flight at a kill counts in both processes, even if the kill came before
its request reached the model.

Pytest users can also take the ``crash_tester`` fixture (add
``pytest_plugins = ["crew_durable.testing"]`` to ``conftest.py``): a
:class:`CrashTester` on a SQLite database in the test's ``tmp_path``.

How it works: the test process starts each subprocess as
``python -m crew_durable._crash_process SPEC`` (or forks it from a fork server
that imported crewAI once, with ``fork_server=True``). The subprocess
counts step bodies by wrapping DBOS's step execution, appends each one to
a log file as it starts (so the steps of the process that is killed are
counted too), and at its kill point writes a marker file and waits; the
test process sees the marker and sends ``SIGKILL``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CrashTestError",
    "CrashTester",
    "KilledRun",
    "RecoveryReport",
    "RunReport",
    "crash_and_recover",
    "crash_tester",
    "pause_here",
    "target_path",
    "wait_to_be_killed",
]

Target = str | Callable[[], Any]
"""What runs the crew: ``"module:function"``, or a module-level function without arguments."""

BOOKKEEPING = frozenset({"DBOS.getResult", "crew_durable.stream_event"})
"""Operations a run records besides its work; left out of :attr:`RunReport.steps`."""

PAUSE_MARKER = "CREW_DURABLE_TESTING_MARKER"
"""Environment: the file a subprocess writes when it reaches its kill point."""

_DEFAULT_TIMEOUT = 180.0


class CrashTestError(AssertionError):
    """A crash test could not do what it was asked: the reason, and the subprocess's error output."""


# ---------------------------------------------------------------------------
# reports


@dataclass(frozen=True)
class RunReport:
    """What one subprocess did with one run.

    ``output`` is what the target returned, as JSON: a ``CrewOutput`` as
    ``{"raw", "pydantic", "json_dict", "tasks_output", "token_usage"}``, a
    pydantic model as its ``model_dump``, anything else as JSON or text.
    ``error`` is ``"ErrorType: message"`` when the target (or the recovered
    run) raised, and ``output`` is then ``None``.
    ``steps`` are the names of the steps the run has recorded, in order, the
    steps of its child runs (a crew's tasks) in place of the child.
    ``executed`` are the step bodies this process ran (not replayed), in the
    order they started; ``requests`` counts the completions among them per
    LLM step (``<agent_name>.llm``...), retries included.
    """

    workflow_id: str
    output: Any
    error: str | None
    steps: list[str]
    tree: list[Any]
    executed: list[str]
    requests: dict[str, int]


@dataclass(frozen=True)
class KilledRun:
    """A run killed at its kill point: the step bodies that ran, the last one in flight."""

    workflow_id: str
    executed: list[str]
    requests: dict[str, int]
    killed_in: str
    """The step (or ``tool <name>``) in flight when the process was killed."""


@dataclass(frozen=True)
class RecoveryReport:
    """A run killed once and recovered in a fresh process.

    ``executed_before_kill`` ends with the step in flight at the kill, which
    the recovered run runs again (DBOS steps are at least once); every other
    step in it ran once. ``requests`` is the sum of both processes.
    """

    workflow_id: str
    output: Any
    steps: list[str]
    tree: list[Any]
    killed_in: str
    executed_before_kill: list[str]
    executed_after_kill: list[str]
    requests_before_kill: dict[str, int]
    requests_after_kill: dict[str, int]

    @property
    def requests(self) -> dict[str, int]:
        """Completions requested per LLM step, in the killed and the recovering process together."""
        return dict(Counter(self.requests_before_kill) + Counter(self.requests_after_kill))

    @property
    def executed_twice(self) -> list[str]:
        """Steps that ran in both processes, by name (the one in flight at the kill, at most, for
        a run whose step names are unique)."""
        after = Counter(self.executed_after_kill)
        return [name for name in dict.fromkeys(self.executed_before_kill) if after[name]]


# ---------------------------------------------------------------------------
# the test process side


def target_path(target: Target) -> str:
    """``target`` as ``"module:qualname"``, checked to import back to the same object."""
    if isinstance(target, str):
        module_name, sep, attribute = target.partition(":")
        if not (sep and module_name and attribute):
            raise ValueError(
                f"The target {target!r} is not 'module:attribute': name the function that runs "
                "your crew, e.g. 'myapp.crews:write_report'."
            )
        return target
    module: str | None = getattr(target, "__module__", None)
    qualname: str | None = getattr(target, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module == "__main__":
        raise ValueError(
            f"The target {target!r} cannot be imported by a new process: pass a function defined "
            "at module level in an importable module, or its path as 'module:function'."
        )
    return f"{module}:{qualname}"


@dataclass
class CrashTester:
    """Runs, kills and recovers targets in subprocesses that share one system database.

    ``database_url`` is the DBOS system database (default: a SQLite file in
    ``directory``); ``directory`` holds the logs and the subprocesses'
    output (default: a temporary directory, removed on :meth:`close`).
    ``env`` is added to each subprocess's environment, after
    ``DBOS_SYSTEM_DATABASE_URL``. ``config`` is ``"module:attribute"`` of a
    DBOS config, or of a function returning one, for processes that need
    their own (default: ``crew_durable.dbos_config(app_name)`` on the
    database). ``around`` is ``"module:attribute"`` of a function returning
    a context manager that each subprocess enters before DBOS launches and
    leaves at its end (a cassette, a mock: it must be active while a
    recovered run runs). ``executor_id`` is the subprocesses' DBOS executor
    id (default DBOS's, ``local``): DBOS recovers at launch the pending
    runs of its own executor id, so runs killed under different ids stay
    pending until a process of their id launches. With ``fork_server``, subprocesses are forked from
    a process that imported crewAI and the ``preload`` modules once: much
    faster to start, for modules that do nothing at import but define
    things (no threads, no open connections). ``timeout`` bounds each
    subprocess, in seconds.

    Use it as a context manager, or call :meth:`close`.
    """

    database_url: str | None = None
    directory: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    config: str | None = None
    around: str | None = None
    app_name: str = "crew_durable_crash_test"
    executor_id: str | None = None
    fork_server: bool = False
    preload: Sequence[str] = ()
    timeout: float = _DEFAULT_TIMEOUT
    _owned_directory: bool = field(default=False, init=False, repr=False)
    _spawned: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="crew-durable-crash-"))
            self._owned_directory = True
        self.directory = Path(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.directory / 'system.sqlite'}"

    def __enter__(self) -> CrashTester:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the temporary directory, if this tester made it."""
        if self._owned_directory and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    # -- what tests call ------------------------------------------------------

    def run(self, target: Target, *, workflow_id: str | None = None, check: bool = True) -> RunReport:
        """Run ``target`` to the end in a subprocess (a reference run, or one to look at)."""
        workflow_id = workflow_id or _new_id(target)
        return self._finish("run", {workflow_id: target}, check)[workflow_id]

    def run_until_killed(
        self,
        target: Target,
        *,
        kill_at_step: int | None = None,
        kill_in_tool: str | None = None,
        workflow_id: str | None = None,
    ) -> KilledRun:
        """Run ``target`` in a subprocess and SIGKILL it at its kill point (exactly one of the two)."""
        if (kill_at_step is None) == (kill_in_tool is None):
            raise ValueError("Give exactly one kill point: kill_at_step=n (from 1) or kill_in_tool='name'.")
        if kill_at_step is not None and kill_at_step < 1:
            raise ValueError(f"kill_at_step counts steps from 1; got {kill_at_step}.")
        workflow_id = workflow_id or _new_id(target)
        spawn = self._spawn(
            "run", {workflow_id: target}, kill_at_step=kill_at_step, kill_in_tool=kill_in_tool
        )
        deadline = time.monotonic() + self.timeout
        while not spawn.marker.exists():
            if not spawn.alive():
                status = spawn.wait()
                executed = _executed(spawn.step_log)
                where = f"step {kill_at_step}" if kill_at_step is not None else f"the tool {kill_in_tool!r}"
                raise CrashTestError(
                    f"The run {workflow_id} ended (exit status {status}) before reaching {where}: it ran "
                    f"{len(executed)} steps {executed}. Choose a kill point the run reaches."
                    f"{spawn.stderr_tail()}"
                )
            if time.monotonic() > deadline:
                spawn.kill()
                raise CrashTestError(
                    f"The run {workflow_id} did not reach its kill point within {self.timeout} s."
                    f"{spawn.stderr_tail()}"
                )
            time.sleep(0.01)
        killed_in = _read_marker(spawn.marker)
        spawn.kill()
        executed = _executed(spawn.step_log)
        return KilledRun(workflow_id, [name for name, _ in executed], _requests(executed), killed_in)

    def recover(self, target: Target, workflow_id: str, *, check: bool = True) -> RunReport:
        """Start a fresh process on the database: DBOS resumes the run at launch; wait for it,
        then call ``target`` again under ``workflow_id`` (which returns the recorded result)."""
        return self._finish("recover", {workflow_id: target}, check)[workflow_id]

    def recover_all(self, targets: Mapping[str, Target], *, check: bool = True) -> dict[str, RunReport]:
        """Like :meth:`recover`, for several runs (workflow id -> target) in one fresh process."""
        return self._finish("recover", dict(targets), check)

    def crash_and_recover(
        self,
        target: Target,
        *,
        kill_at_step: int | None = None,
        kill_in_tool: str | None = None,
        workflow_id: str | None = None,
    ) -> RecoveryReport:
        """Run ``target``, SIGKILL it at its kill point, recover it in a fresh process."""
        killed = self.run_until_killed(
            target, kill_at_step=kill_at_step, kill_in_tool=kill_in_tool, workflow_id=workflow_id
        )
        recovered = self.recover(target, killed.workflow_id)
        return RecoveryReport(
            workflow_id=killed.workflow_id,
            output=recovered.output,
            steps=recovered.steps,
            tree=recovered.tree,
            killed_in=killed.killed_in,
            executed_before_kill=killed.executed,
            executed_after_kill=recovered.executed,
            requests_before_kill=killed.requests,
            requests_after_kill=recovered.requests,
        )

    # -- subprocesses -----------------------------------------------------------

    def _finish(self, mode: str, targets: dict[str, Target], check: bool) -> dict[str, RunReport]:
        spawn = self._spawn(mode, targets)
        try:
            status = spawn.wait(self.timeout)
        except subprocess.TimeoutExpired:
            spawn.kill()
            raise CrashTestError(
                f"The {mode} process did not finish within {self.timeout} s.{spawn.stderr_tail()}"
            ) from None
        if status != 0 or not spawn.report.exists():
            raise CrashTestError(f"The {mode} process failed (exit status {status}).{spawn.stderr_tail()}")
        raw: dict[str, Any] = json.loads(spawn.report.read_text())
        executed = _executed(spawn.step_log)
        reports = {}
        for workflow_id, data in raw.items():
            report = RunReport(
                workflow_id=workflow_id,
                output=data.get("output"),
                error=data.get("error"),
                steps=data.get("steps", []),
                tree=data.get("tree", []),
                executed=[name for name, _ in executed],
                requests=_requests(executed),
            )
            if check and report.error is not None:
                raise CrashTestError(
                    f"The run {workflow_id} failed in the {mode} process: {report.error}{spawn.stderr_tail()}"
                )
            reports[workflow_id] = report
        return reports

    def _spawn(
        self,
        mode: str,
        targets: dict[str, Target],
        kill_at_step: int | None = None,
        kill_in_tool: str | None = None,
    ) -> _Spawned:
        assert self.directory is not None and self.database_url is not None
        self._spawned += 1
        prefix = self.directory / f"process{self._spawned}"
        spawn = _Spawned(
            marker=Path(f"{prefix}.killpoint"),
            step_log=Path(f"{prefix}.steps"),
            report=Path(f"{prefix}.report.json"),
            out=Path(f"{prefix}.out"),
            err=Path(f"{prefix}.err"),
        )
        spec = {
            "mode": mode,
            "targets": {workflow_id: target_path(target) for workflow_id, target in targets.items()},
            "kill_at_step": kill_at_step,
            "kill_in_tool": kill_in_tool,
            "step_log": str(spawn.step_log),
            "report": str(spawn.report),
            "config": self.config,
            "around": self.around,
            "app_name": self.app_name,
            "executor_id": self.executor_id,
        }
        spec_path = Path(f"{prefix}.spec.json")
        spec_path.write_text(json.dumps(spec))
        env = {
            "DBOS_SYSTEM_DATABASE_URL": self.database_url,
            PAUSE_MARKER: str(spawn.marker),
            **self.env,
        }
        if self.fork_server:
            server = _ForkServer.get(tuple(self.preload), _import_path())
            spawn.pid = server.spawn(str(spec_path), env, spawn.out, spawn.err)
            spawn.server = server
        else:
            with spawn.out.open("wb") as out, spawn.err.open("wb") as err:
                spawn.process = subprocess.Popen(
                    [sys.executable, "-m", "crew_durable._crash_process", str(spec_path)],
                    env={**os.environ, "PYTHONPATH": _import_path(), **env},
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                )
            spawn.pid = spawn.process.pid
        return spawn


def _new_id(target: Target) -> str:
    name = target_path(target).rpartition(":")[2].replace(".", "-")
    return f"crash-test-{name}-{uuid.uuid4().hex[:8]}"


def _import_path() -> str:
    """This process's import path, so subprocesses import the same modules (pytest adds to it)."""
    entries = [entry or os.getcwd() for entry in sys.path]
    existing = os.environ.get("PYTHONPATH")
    return os.pathsep.join(
        [*(entry for entry in entries if os.path.isdir(entry)), *([existing] if existing else [])]
    )


def _read_marker(marker: Path) -> str:
    for _ in range(100):  # written by the paused process just before it waits
        text = marker.read_text()
        if text:
            return text
        time.sleep(0.01)
    return "?"


def _executed(step_log: Path) -> list[tuple[str, str]]:
    """(step name, kind) of every step body a process started, in order."""
    if not step_log.exists():
        return []
    lines = step_log.read_text(encoding="utf-8").splitlines()
    return [(entry["name"], entry["kind"]) for entry in map(json.loads, filter(None, lines))]


def _requests(executed: list[tuple[str, str]]) -> dict[str, int]:
    return dict(Counter(name for name, kind in executed if kind == "completion"))


@dataclass
class _Spawned:
    marker: Path
    step_log: Path
    report: Path
    out: Path
    err: Path
    pid: int = 0
    process: subprocess.Popen[bytes] | None = None
    server: _ForkServer | None = None
    _status: int | None = None

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return _alive(self.pid)

    def wait(self, timeout: float | None = None) -> int:
        if self._status is None:
            if self.process is not None:
                self._status = self.process.wait(timeout)
            else:
                assert self.server is not None
                if timeout is not None:
                    deadline = time.monotonic() + timeout
                    while _alive(self.pid):
                        if time.monotonic() > deadline:
                            raise subprocess.TimeoutExpired(str(self.pid), timeout)
                        time.sleep(0.01)
                self._status = self.server.wait(self.pid)
        return self._status

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        status = self.wait()
        if status != -signal.SIGKILL:
            raise CrashTestError(
                f"The process exited with status {status} instead of being killed.{self.stderr_tail()}"
            )

    def stderr_tail(self) -> str:
        text = self.err.read_text(errors="replace") if self.err.exists() else ""
        return f"\n--- its stderr ({self.err}) ends with:\n{text[-4000:]}" if text.strip() else ""


def _alive(pid: int) -> bool:
    """Whether a child process is still running (not exited, not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state != "Z"


class _ForkServer:
    """A process that imported crewAI once and forks a crash-test subprocess per request."""

    _servers: dict[tuple[tuple[str, ...], str], _ForkServer] = {}  # noqa: RUF012
    _lock = threading.Lock()

    def __init__(self, preload: tuple[str, ...], import_path: str) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "crew_durable._crash_process", "--fork-server", *preload],
            env={**os.environ, "PYTHONPATH": import_path},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._io = threading.Lock()
        ready = self._request(None)
        if ready != {"ready": True}:
            raise CrashTestError(f"The fork server did not start: {ready}")
        atexit.register(self._process.kill)

    @classmethod
    def get(cls, preload: tuple[str, ...], import_path: str) -> _ForkServer:
        with cls._lock:
            server = cls._servers.get((preload, import_path))
            if server is None or server._process.poll() is not None:
                server = cls._servers[(preload, import_path)] = cls(preload, import_path)
            return server

    def _request(self, request: dict[str, Any] | None) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        with self._io:
            if request is not None:
                self._process.stdin.write(json.dumps(request) + "\n")
                self._process.stdin.flush()
            line = self._process.stdout.readline()
        if not line:
            raise CrashTestError("The fork server exited; run with fork_server=False to see why.")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def spawn(self, spec: str, env: dict[str, str], out: Path, err: Path) -> int:
        return int(self._request({"spawn": spec, "env": env, "out": str(out), "err": str(err)})["pid"])

    def wait(self, pid: int) -> int:
        return int(self._request({"wait": pid})["status"])


@contextlib.contextmanager
def _temporary_tester(
    database_url: str | None, directory: Path | str | None, options: dict[str, Any]
) -> Iterator[CrashTester]:
    with CrashTester(
        database_url=database_url, directory=Path(directory) if directory else None, **options
    ) as tester:
        yield tester


def crash_and_recover(
    target: Target,
    *,
    kill_at_step: int | None = None,
    kill_in_tool: str | None = None,
    database_url: str | None = None,
    directory: Path | str | None = None,
    workflow_id: str | None = None,
    **options: Any,
) -> RecoveryReport:
    """Run ``target`` in a subprocess, SIGKILL it at its kill point, recover it in a fresh one.

    One of ``kill_at_step=n`` (the n-th step body to start, from 1) or
    ``kill_in_tool="name"``. The database is ``database_url``, or a new
    SQLite file in ``directory`` (a temporary one by default). ``options``
    are :class:`CrashTester`'s (``env``, ``config``, ``around``,
    ``fork_server``, ``preload``, ``timeout``). Raises
    :class:`CrashTestError` if the run ends before its kill point or the
    recovered run fails.
    """
    with _temporary_tester(database_url, directory, options) as tester:
        return tester.crash_and_recover(
            target, kill_at_step=kill_at_step, kill_in_tool=kill_in_tool, workflow_id=workflow_id
        )


try:
    import pytest as _pytest
except ImportError:  # pragma: no cover - pytest is only needed for the fixture
    pass
else:

    @_pytest.fixture
    def crash_tester(tmp_path: Path) -> Iterator[CrashTester]:
        """A :class:`CrashTester` on a SQLite system database in the test's ``tmp_path``.

        Enable it with ``pytest_plugins = ["crew_durable.testing"]`` in your ``conftest.py``.
        """
        with CrashTester(directory=tmp_path) as tester:
            yield tester


def pause_here(name: str) -> None:
    """A kill point of your own: in a crash test run with ``kill_in_tool=name``, stop here.

    The subprocess waits here to be killed, as it does at the start of a
    tool of that name. Anywhere else (in production, in other tests) it
    does nothing.
    """
    process = sys.modules.get("crew_durable._crash_process")
    if process is not None:  # loaded only in a crash-test process
        process.pause_if_watched(name)


def wait_to_be_killed(marker: Path | None, note: str = "") -> None:
    """Write ``note`` to ``marker`` (atomically: the file appears complete) and never return.

    The process waits there, in the middle of whatever called it, until the
    test process that watches ``marker`` kills it.
    """
    if marker is not None:
        partial = marker.with_name(f"{marker.name}.tmp")
        partial.write_text(note)
        partial.replace(marker)
    while True:
        time.sleep(60)
