"""Record the project's cassettes against the local fake OpenAI server.

    python -m tools.record_cassettes                 # every scenario of every app, and the demo
    python -m tools.record_cassettes calculator      # one app
    python -m tools.record_cassettes calculator.execute_task
    python -m tools.record_cassettes demo            # the crash-and-recover demo's crew

Each scenario of ``tests/support/apps/<app>.py`` runs once, uninterrupted,
as a durable run on a throwaway SQLite database, while the app's ``brain``
answers on 127.0.0.1:8765 and vcrpy writes every exchange to
``cassettes/<app>.<scenario>.yaml`` (authorization headers filtered). The
demo's crew (examples/newsroom.py) is answered by ``tools/demo_brain.py``.
"""

from __future__ import annotations

import tests  # noqa: F401  - keeps crewAI quiet and local; must precede it  # isort: skip

import asyncio
import contextlib
import importlib
import inspect
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from dbos import DBOS

from crew_durable import dbos_config
from tests.support.cassettes import CASSETTES, FAKE_PORT, recorder
from tests.support.people import answering
from tools.fake_openai import FakeOpenAI

APPS_DIR = Path(__file__).resolve().parents[1] / "tests" / "support" / "apps"


def apps() -> list[str]:
    return sorted(p.stem for p in APPS_DIR.glob("*.py") if not p.stem.startswith("_"))


def record(app_name: str, scenario: str) -> None:
    app = _app(app_name)
    run = app.SCENARIOS[scenario]
    path = CASSETTES / f"{app_name}.{scenario}.yaml"
    path.unlink(missing_ok=True)  # vcrpy's record mode "all" would keep the old interactions too
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CREW_DURABLE_TEST_LEDGER"] = f"{tmp}/ledger.jsonl"  # apps' side effects go here
        database = f"sqlite:///{tmp}/record.sqlite"
        DBOS(config=dbos_config("record", database))
        DBOS.launch()
        server = FakeOpenAI(app.brain, port=FAKE_PORT)
        try:
            person = getattr(app, "answer", None)  # an app whose runs ask people
            answers = answering(database, person) if person else contextlib.nullcontext()
            with recorder(record=True).use_cassette(str(path)), answers:
                try:
                    result = asyncio.run(run()) if inspect.iscoroutinefunction(run) else run()
                except Exception as error:  # a scenario may record a failing run
                    result = f"{type(error).__name__}: {error}"
        finally:
            server.close()
            DBOS.destroy(destroy_registry=False)
    print(f"{path.relative_to(CASSETTES.parent)}: {len(server.requests)} requests -> {result!r}")


class _Demo:
    """The demo's crew, recorded like an app."""

    @staticmethod
    def kickoff() -> str:
        from examples.crash_and_recover import INPUTS
        from examples.newsroom import newsroom

        return newsroom.kickoff(inputs=INPUTS).raw

    SCENARIOS: ClassVar[dict[str, Callable[[], str]]] = {"kickoff": kickoff}

    @staticmethod
    def brain(body: dict[str, Any]) -> dict[str, Any]:
        from tools.demo_brain import brain

        return brain(body)


def _app(name: str) -> Any:
    if name == "demo":
        os.environ["NEWSROOM_OFFLINE"] = "1"
        return _Demo
    return importlib.import_module(f"tests.support.apps.{name}")


def main(selection: list[str]) -> None:
    os.chdir(Path(__file__).resolve().parents[1])
    wanted = selection or [*apps(), "demo"]
    if len(wanted) > 1:  # one process per app: apps may define agents and crews of the same names
        for item in wanted:
            subprocess.run([sys.executable, "-m", "tools.record_cassettes", item], check=True)
        return
    for item in wanted:
        app_name, _, scenario = item.partition(".")
        app = _app(app_name)
        if not hasattr(app, "brain"):
            continue  # replays a recording that is not ours (crewAI's conformance data)
        for name in [scenario] if scenario else list(app.SCENARIOS):
            record(app_name, name)


if __name__ == "__main__":
    main(sys.argv[1:])
