"""The subprocess side of ``crew_durable.testing``: a crash-test process and its fork server.

``crew_durable.testing`` (the test process) starts each crash-test process
as ``python -m crew_durable._crash_process SPEC.json``, or forks it from a
fork server (``--fork-server``) that imported crewAI once. The process
configures DBOS on the test's database, counts the step bodies it runs by
wrapping DBOS's step execution, appends each to a log file as it starts (so
a killed process's steps are counted too), runs or recovers its targets and
writes a JSON report; at its kill point it writes a marker file and waits for
the test process to ``SIGKILL`` it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import inspect
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crew_durable.testing import BOOKKEEPING, PAUSE_MARKER, CrashTestError, wait_to_be_killed


def pause_if_watched(name: str) -> None:
    """Stop here if this crash-test process was told to stop at ``name`` (see ``testing.pause_here``)."""
    if name == _kill_in_tool:
        _pause(name)


_kill_in_tool: str | None = None
_paused = threading.Event()


def _pause(description: str) -> None:
    """Tell the test process this process reached its kill point, and wait to be killed."""
    _paused.set()
    marker = os.environ.get(PAUSE_MARKER)
    wait_to_be_killed(Path(marker) if marker else None, description)


class _StepWatch:
    """Counts the step bodies this process runs, logs each as it starts, pauses at the kill point."""

    def __init__(self, log: Path, kill_at_step: int | None) -> None:
        self.log = log
        self.kill_at_step = kill_at_step
        self.started = 0
        self.lock = threading.Lock()

    def started_step(self, name: str, kind: str) -> None:
        with self.lock:
            self.started += 1
            number = self.started
            with self.log.open("a", encoding="utf-8") as log:
                log.write(json.dumps({"name": name, "kind": kind}) + "\n")
                log.flush()
                os.fsync(log.fileno())
        if number == self.kill_at_step:
            _pause(f"step {number} ({name})")


def _step_kind(func: Callable[..., Any]) -> str:
    from crew_durable._llm import DBOSLLM

    owner = getattr(func, "__self__", None)
    if isinstance(owner, DBOSLLM) and getattr(func, "__name__", "") in ("_complete", "_acomplete"):
        return "completion"
    return "step"


def _watch_steps(watch: _StepWatch) -> None:
    """Make each step body announce itself when it starts (once per attempt of a step not recorded)."""
    from crew_durable._dbos_internals import wrap_step_bodies

    def wrap(name: str, func: Any) -> Any:
        kind = _step_kind(func)
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def body(*a: Any, **k: Any) -> Any:
                watch.started_step(name, kind)
                return await func(*a, **k)

            return body

        @functools.wraps(func)
        def plain_body(*a: Any, **k: Any) -> Any:
            watch.started_step(name, kind)
            return func(*a, **k)

        return plain_body

    wrap_step_bodies(wrap)


def _watch_tools(tool_name: str | None) -> None:
    """Pause when the tool ``tool_name`` starts running (inside its step, for a tool step)."""
    global _kill_in_tool
    _kill_in_tool = tool_name
    if tool_name is None:
        return
    from crewai.tools.base_tool import BaseTool, Tool

    from crew_durable._tool_steps import DBOSTool

    def watched(method: Any) -> Any:
        if inspect.iscoroutinefunction(method):

            @functools.wraps(method)
            async def arun(self: Any, *args: Any, **kwargs: Any) -> Any:
                if self.name == tool_name and not isinstance(self, DBOSTool):
                    _pause(f"tool {tool_name}")
                return await method(self, *args, **kwargs)

            return arun

        @functools.wraps(method)
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            # A durable tool (DBOSTool) runs the user's tool inside its step: pause in there.
            if self.name == tool_name and not isinstance(self, DBOSTool):
                _pause(f"tool {tool_name}")
            return method(self, *args, **kwargs)

        return run

    for cls in (BaseTool, Tool):
        for name in ("run", "arun"):
            if name in cls.__dict__:
                setattr(cls, name, watched(cls.__dict__[name]))


def _load(path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise CrashTestError(
                f"{path!r}: module {module_name!r} has no {attribute!r}. Name a module-level function."
            ) from None
    return target


def _call(target: Any) -> Any:
    if not callable(target):
        raise CrashTestError(
            f"The target {target!r} is not callable: give a function without arguments that runs "
            "your crew and returns its output."
        )
    result = target()
    return asyncio.run(result) if inspect.iscoroutine(result) else result


def _output_json(value: Any) -> Any:
    from crewai.crews.crew_output import CrewOutput
    from pydantic import BaseModel

    from crew_durable._outputs import crew_output_to_json

    if isinstance(value, CrewOutput):
        return crew_output_to_json(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return json.loads(json.dumps(value, default=str))


def _describe(error: BaseException) -> str:
    """``"ErrorType: message"``, with the original type of a workflow error DBOS read back."""
    from dbos import PortableWorkflowError

    if isinstance(error, PortableWorkflowError):
        return f"{error.name}: {error.message}"
    return f"{type(error).__name__}: {error}"


def _tree(workflow_id: str) -> list[Any]:
    from dbos import DBOS

    tree: list[Any] = []
    for step in DBOS.list_workflow_steps(workflow_id):
        name, child = step["function_name"], step["child_workflow_id"]
        if name not in BOOKKEEPING:
            tree.append([name, _tree(child)] if child else name)
    return tree


def _flatten(tree: list[Any]) -> list[str]:
    names: list[str] = []
    for entry in tree:
        if isinstance(entry, list):
            names.extend(_flatten(entry[1]))
        else:
            names.append(entry)
    return names


def _configure(spec: dict[str, Any]) -> None:
    from dbos import DBOS

    from crew_durable import dbos_config
    from crew_durable._dbos_internals import dbos_configured

    if dbos_configured():
        raise CrashTestError(
            f"DBOS was configured while importing {', '.join(spec['targets'].values())}: a crash test "
            "configures DBOS itself, on the test's database, and the configuration made at import "
            "would win. Configure and launch DBOS in your application's entry point (a main "
            "function, or under `if __name__ == '__main__':`), not at import; pass config= to the "
            "crash test for settings of your own."
        )
    if spec["config"]:
        config = _load(spec["config"])
        DBOS(config=config() if callable(config) else config)
    else:
        settings = {"executor_id": spec["executor_id"]} if spec["executor_id"] else {}
        DBOS(config=dbos_config(spec["app_name"], **settings))


def _resumed_here(workflow_id: str) -> bool:
    """Whether the run exists; refuses a pending run this process's DBOS would never resume."""
    from dbos import DBOS

    status = DBOS.get_workflow_status(workflow_id)
    if status is None:
        return False  # killed before its workflow started: calling the target starts it
    theirs = (status.app_version, status.executor_id)
    mine = (DBOS.application_version, DBOS.executor_id)
    if status.status == "PENDING" and theirs != mine:
        raise CrashTestError(
            f"The run {workflow_id} is pending under application version {theirs[0]!r} and executor "
            f"id {theirs[1]!r}; this process is {mine[0]!r}, {mine[1]!r}, and DBOS resumes at launch "
            "only the runs of its own version and executor id. Give the recovering CrashTester the "
            "executor_id (and config) the run was started with."
        )
    return True


def _child_main(spec_path: str) -> None:
    from dbos import DBOS, SetWorkflowID

    spec: dict[str, Any] = json.loads(Path(spec_path).read_text())
    _watch_steps(_StepWatch(Path(spec["step_log"]), spec["kill_at_step"]))
    _watch_tools(spec["kill_in_tool"])
    targets = {workflow_id: _load(path) for workflow_id, path in spec["targets"].items()}
    around = _load(spec["around"])() if spec["around"] else contextlib.nullcontext()
    report: dict[str, Any] = {}
    with around:
        _configure(spec)
        DBOS.launch()  # DBOS resumes the interrupted runs now
        try:
            for workflow_id, target in targets.items():
                entry: dict[str, Any] = {}
                try:
                    if spec["mode"] == "recover" and _resumed_here(workflow_id):
                        DBOS.retrieve_workflow(workflow_id).get_result(polling_interval_sec=0.05)
                    with SetWorkflowID(workflow_id):
                        entry["output"] = _output_json(_call(target))
                except Exception as error:
                    traceback.print_exc()
                    entry["error"] = _describe(error)
                entry["tree"] = _tree(workflow_id)
                entry["steps"] = _flatten(entry["tree"])
                report[workflow_id] = entry
        finally:
            Path(spec["report"]).write_text(json.dumps(report))
    # Everything is recorded: leave at once. (DBOS.destroy would wait about a second for
    # DBOS's queue thread, in every process of every crash test.)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


_WARM_UP = (
    "openai.resources",
    "openai.types",
    "crewai.hooks.contexts",
    "crewai.llms.cache",
    "crewai.skills.tool",
)
"""Modules a first crew kickoff imports (about 500, nearly all openai's), imported by the fork server."""


def _fork_server_main(preload: list[str]) -> None:
    """Import crewAI, DBOS and ``preload`` once; fork a crash-test subprocess per request."""
    importlib.import_module("crewai")
    importlib.import_module("crew_durable._crew")
    importlib.import_module("crew_durable._agent")
    for module in _WARM_UP:  # imported lazily by a first kickoff: once here, not in every child
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    for module in preload:
        importlib.import_module(module)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request: dict[str, Any] = json.loads(line)
        if "spawn" in request:
            reply = {"pid": _fork(request["spawn"], request["env"], request["out"], request["err"])}
        else:
            _, status = os.waitpid(int(request["wait"]), 0)
            reply = {"status": os.waitstatus_to_exitcode(status)}
        print(json.dumps(reply), flush=True)


def _fork(spec: str, env: dict[str, str], out: str, err: str) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the child: become the crash-test subprocess
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.environ.update(env)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        for path, fd in ((out, 1), (err, 2)):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        _child_main(spec)
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--fork-server"]:
        _fork_server_main(argv[1:])
    elif len(argv) == 1:
        _child_main(argv[0])
    else:
        raise SystemExit("usage: python -m crew_durable._crash_process SPEC.json | --fork-server [MODULE...]")


if __name__ == "__main__":
    # Run as the importable module, so that crew_durable.testing.pause_here (called by the
    # code under test) and the hooks share its state.
    from crew_durable import _crash_process

    _crash_process.main(sys.argv[1:])
