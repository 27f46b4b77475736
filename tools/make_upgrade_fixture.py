"""Make the upgrade fixture: a SQLite system database holding runs killed mid-flight.

    .venv/bin/python -m tools.make_upgrade_fixture [--force]

writes ``tests/fixtures/upgrade-r<FORMAT>.sqlite`` and its manifest
``upgrade-r<FORMAT>.json``. ``tests/test_upgrade.py`` recovers every fixture
in that directory under the current code, as Temporal's ``Replayer`` replays
stored histories: a release must recover the runs an older release left
pending, or refuse them clearly. Make one fixture per record format and keep
it: the script refuses to replace one (``--force`` does, for a format not yet
released).

The database holds three pending runs, each killed with ``SIGKILL`` by
:mod:`crew_durable.testing`, the apps' completions served from their
cassettes (the committed ``upgrade-r2`` was made against the fake OpenAI
server answering with :func:`brain`, which served the same answers):

- ``upgrade-crew-mid-task``: the newsroom crew (two tasks, ``@DBOS.step``
  tools, a pydantic output), killed while the second task's last completion
  was in flight: the first task and the publish tool had finished;
- ``upgrade-agent-mid-completion``: the calculator agent's ``execute_task``
  (one run), killed while its second completion was in flight;
- ``upgrade-tool-in-flight``: the newsroom crew killed inside its
  ``publish`` tool step.

Each run was started under an executor id equal to its workflow id, so a
process recovers it by launching under that id. The manifest says, per
run, what ran before the kill (step bodies and side effects) and what an
uninterrupted run returns, records and does, so the test can check that
recovery ran exactly what had not finished.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sqlite3
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tests  # noqa: F401  - keeps crewAI quiet and local, before it is imported
from crew_durable._config import APPLICATION_VERSION
from crew_durable._protocol import FORMAT
from crew_durable.testing import CrashTester
from tests.support import ledger
from tests.support.apps import calculator, newsroom
from tests.support.cassettes import ROOT
from tests.support.processes import CASSETTE

FIXTURES = ROOT / "tests" / "fixtures"
PRELOAD = ("tests.support.apps.newsroom", "tests.support.apps.calculator")

RUNS: list[dict[str, Any]] = [
    {
        "workflow_id": "upgrade-crew-mid-task",
        "target": "tests.support.apps.newsroom:kickoff",
        "kill": {"kill_at_step": 6},
        "what": "a crew kickoff killed in its second task, its last completion in flight",
    },
    {
        "workflow_id": "upgrade-agent-mid-completion",
        "target": "tests.support.apps.calculator:execute_task",
        "kill": {"kill_at_step": 3},
        "what": "an agent run killed while its second completion was in flight",
    },
    {
        "workflow_id": "upgrade-tool-in-flight",
        "target": "tests.support.apps.newsroom:kickoff",
        "kill": {"kill_in_tool": "publish"},
        "what": "a crew kickoff killed inside its publish tool step",
    },
]


def brain(body: dict[str, Any]) -> dict[str, Any]:
    """The fake model for every app in the fixture: each app's own brain, by its system prompt."""
    system = str(body["messages"][0]["content"])
    return calculator.brain(body) if "Calculator" in system else newsroom.brain(body)


def cassette_of(target: str) -> str:
    """The project cassette a test app's scenario replays: ``tests.support.apps.newsroom:kickoff`` ->
    ``newsroom.kickoff``."""
    module, _, function = target.partition(":")
    return f"{module.rpartition('.')[2]}.{function}"


def fixture_tester(
    database_url: str, directory: Path, ledger_path: Path, target: str, **options: Any
) -> CrashTester:
    """A crash tester for the app of ``target``: its cassette replayed, side effects in ``ledger_path``."""
    return CrashTester(
        database_url=database_url,
        directory=directory,
        env={ledger.ENV: str(ledger_path), CASSETTE: cassette_of(target)},
        around="tests.support.processes:cassette_from_environment",
        fork_server=True,
        preload=PRELOAD,
        **options,
    )


def ledger_counts(path: Path) -> dict[str, int]:
    """How many times each tool's side effect happened, from a ledger file."""
    counts: dict[str, int] = {}
    for entry in ledger.entries(path):
        counts[entry["tool"]] = counts.get(entry["tool"], 0) + 1
    return counts


def checkpoint(database: Path) -> None:
    """Fold SQLite's write-ahead log (a killed process leaves it) into the file, and compact it."""
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.execute("PRAGMA journal_mode=DELETE")
    connection.close()
    with sqlite3.connect(database, isolation_level=None) as connection:
        connection.execute("VACUUM")
    connection.close()


def make(work: Path) -> tuple[Path, dict[str, Any]]:
    database = work / "fixture.sqlite"
    url = f"sqlite:///{database}"
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "application_version": APPLICATION_VERSION,
        "made_with": {name: importlib.metadata.version(name) for name in ("crew_durable", "crewai", "dbos")},
        "runs": [],
    }
    # The apps' completions are served from their cassettes, in each process.
    for number, run in enumerate(RUNS, 1):
        reference_dir = work / f"reference{number}"
        reference_dir.mkdir()
        reference_ledger = reference_dir / "ledger.jsonl"
        reference_url = f"sqlite:///{reference_dir / 'reference.sqlite'}"
        with fixture_tester(reference_url, reference_dir, reference_ledger, run["target"]) as t:
            reference = t.run(run["target"])
        killed_dir = work / f"killed{number}"
        killed_dir.mkdir()
        killed_ledger = killed_dir / "ledger.jsonl"
        # Each run under an executor id of its own: a process launching under
        # another id does not resume it (and the test recovers each on its own).
        with fixture_tester(
            url, killed_dir, killed_ledger, run["target"], executor_id=run["workflow_id"]
        ) as t:
            killed = t.run_until_killed(run["target"], workflow_id=run["workflow_id"], **run["kill"])
        in_flight = killed.executed[-1] if "kill_at_step" in run["kill"] else None
        manifest["runs"].append(
            {
                **run,
                "killed_in": killed.killed_in,
                "executed_before_kill": killed.executed,
                "in_flight": in_flight,
                "side_effects_before_kill": ledger_counts(killed_ledger),
                "uninterrupted": {
                    "output": reference.output,
                    "steps": reference.steps,
                    "executed": reference.executed,
                    "side_effects": ledger_counts(reference_ledger),
                },
            }
        )
    checkpoint(database)
    return database, manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="replace this format's fixture")
    parser.add_argument("--out", type=Path, default=FIXTURES, help="directory (default: tests/fixtures)")
    args = parser.parse_args(argv)
    target = args.out / f"upgrade-r{FORMAT}.sqlite"
    if target.exists() and not args.force:
        sys.exit(
            f"{target} exists: it holds runs of a released record format, which every later "
            "release must recover. Keep it; pass --force only to replace a fixture of an unreleased format."
        )
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="upgrade-fixture-") as work:
        database, manifest = make(Path(work))
        _save_as_one_file(database, target)
    target.with_suffix(".json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    print(f"{target} ({target.stat().st_size // 1024} KiB), {len(manifest['runs'])} pending runs")
    _show(manifest["runs"])


def _save_as_one_file(database: Path, target: Path) -> None:
    """Copy ``database`` with what its killed processes left in its write-ahead log, as one file."""
    target.unlink(missing_ok=True)
    with sqlite3.connect(database) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")
    with sqlite3.connect(target) as check:
        assert check.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def _show(runs: list[Mapping[str, Any]]) -> None:
    for run in runs:
        print(f"  {run['workflow_id']}: killed in {run['killed_in']} after {run['executed_before_kill']}")


if __name__ == "__main__":
    main()
