"""Start harness processes in a fraction of a second.

Importing crewAI takes seconds, and every crash test starts at least two
processes. The fork server imports crewAI, DBOS and every test app once,
before DBOS is configured, and then forks a child per request. Each child
is a real, separate process with a freshly imported program and nothing
else: it opens its own database connections, can be SIGKILLed, and leaves
nothing behind in the server. (Fork is safe here because the server never
starts a thread or a connection before forking.)

Protocol, one JSON object per line on stdin/stdout:

    {"spawn": [harness args...], "env": {...}, "out": path, "err": path}  ->  {"pid": n}
    {"wait": pid}                                                         ->  {"status": code}

``status`` is the child's exit code, or minus the signal that killed it.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import signal
import sys
from pathlib import Path
from typing import Any

import tests.support.apps as apps
from tests.support import harness


def preload() -> None:
    """Import every test app, except those that open files of their own at import."""
    for module in pkgutil.iter_modules(apps.__path__):
        source = Path(apps.__path__[0], f"{module.name}.py").read_text()
        if "FORK_SERVER = False" not in source:
            importlib.import_module(f"{apps.__name__}.{module.name}")


def spawn(args: list[str], environment: dict[str, str], out: str, err: str) -> int:
    pid = os.fork()
    if pid:
        return pid
    try:  # the child: become the harness process
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.environ.update(environment)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # no terminal: input() gets EOF, not our pipe
        for path, fd in ((out, 1), (err, 2)):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        harness.main(args)
        code = 0
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def serve() -> None:
    preload()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request: dict[str, Any] = json.loads(line)
        if "spawn" in request:
            reply = {"pid": spawn(request["spawn"], request["env"], request["out"], request["err"])}
        else:
            reply = {"status": wait(request["wait"])}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parents[2])
    serve()
