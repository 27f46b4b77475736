"""The crew-durable command line, on runs that finished, failed, wait, were cancelled or forked."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from crewai import Agent, Crew, Task
from dbos import SetWorkflowID
from typer.testing import CliRunner

from crew_durable import CrewClient, DBOSCrew, RecordedError
from crew_durable.cli import app
from tests.support.apps import checkout, trio
from tests.support.cassettes import FAKE_PORT, ROOT, fake_llm, replay
from tests.support.databases import Database
from tests.support.people import answering, wait_for_request
from tools.fake_openai import FakeHTTPError, serve

runner = CliRunner()


def _failing(body: dict[str, object]) -> dict[str, object]:
    raise FakeHTTPError(400, "the model refuses this task")


doomed_agent = Agent(
    role="Doomed", goal="Fail", backstory="Unlucky.", llm=fake_llm(max_retries=0), max_retry_limit=0
)
doomed = DBOSCrew(
    crew_name="cli.doomed",
    orig_crew=Crew(
        agents=[doomed_agent], tasks=[Task(description="Try.", expected_output="x", agent=doomed_agent)]
    ),
)


def cli_json(*args: str) -> Any:
    """A command's JSON (the crews running in this test process may print lines of their own)."""
    lines = [line for line in cli(*args).splitlines() if line.startswith(("[", "{"))]
    return json.loads(lines[-1])


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_runs_show_inbox_and_answers_from_the_command_line(
    launched: Database, fixed_ports: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = ["--db", launched.url]
    tag = uuid.uuid4().hex[:6]
    finished, cancelled = f"cli-done-{tag}", f"cli-cancelled-{tag}"
    with serve(trio.brain, port=FAKE_PORT):
        with SetWorkflowID(finished):
            output = trio.trio.kickoff()
        fork_id = cli("fork", finished, "--task", "3", *db).strip()
        with CrewClient(launched.url) as client:
            assert client.result(fork_id).raw == output.raw
        monkeypatch.setattr(trio, "DELAY", 0.3)
        with SetWorkflowID(cancelled):
            trio.trio.start()
        time.sleep(1.0)
        cli("cancel", cancelled, *db)
        monkeypatch.setattr(trio, "DELAY", 0.0)
    with (
        serve(_failing, port=FAKE_PORT),
        SetWorkflowID(failed := f"cli-failed-{tag}"),
        pytest.raises(RecordedError, match="refuses"),
    ):
        doomed.kickoff()

    with replay("checkout.ada"):
        waiting = checkout.checkout.start(inputs=checkout.ADA)
        with CrewClient(launched.url) as client:
            request = wait_for_request(client, waiting.get_workflow_id())

        listed = {run["run_id"]: run for run in cli_json("runs", "--json", "--limit", "500", *db)}
        assert listed[finished]["status"] == "SUCCESS" and listed[finished]["kind"] == "crew"
        assert (listed[finished]["tasks_done"], listed[finished]["tasks_total"]) == (3, 3)
        assert (
            listed[finished]["llm_calls"] == 6
            and listed[finished]["tokens"] == output.token_usage.total_tokens
        )
        assert listed[fork_id]["forked_from"] == finished and listed[fork_id]["status"] == "SUCCESS"
        assert listed[cancelled]["status"] == "CANCELLED" and listed[cancelled]["tasks_done"] < 3
        assert listed[failed]["status"] == "ERROR"
        pending = listed[waiting.get_workflow_id()]
        assert pending["status"] == "PENDING" and pending["waiting"] and pending["tasks_total"] == 2
        table = cli("runs", "--name", "trio", *db)
        assert finished in table and "3/3" in table and "SUCCESS" in table

        tree = cli_json("show", finished, "--json", *db)
        tasks = [step["child"] for step in tree["steps"] if step["kind"] == "run"]
        assert [task["task"] for task in tasks] == ["Stage: gather.", "Stage: draft.", "Stage: publish."]
        assert [s["kind"] for s in tasks[0]["steps"]] == ["completion", "tool", "completion"]
        assert tasks[0]["steps"][1]["detail"] == 'act({"stage": "gather"}) -> gather done'
        assert sum(s["tokens"] or 0 for t in tasks for s in t["steps"]) == output.token_usage.total_tokens
        assert "act" in cli("show", finished, *db)

        inbox = cli_json("inbox", "--json", "--run", waiting.get_workflow_id(), *db)
        assert [r["request_id"] for r in inbox] == [request.request_id]
        assert "charge_card(customer='ada', amount=42)" in cli("inbox", *db)
        cli("approve", request.request_id, *db)
        refused = runner.invoke(app, ["approve", request.request_id, *db])
        assert refused.exit_code == 1 and "already approved" in refused.output
        with answering(launched.url, checkout.answer, waiting.get_workflow_id()):
            assert waiting.get_result(polling_interval_sec=0.05).raw == "Thank you, ada: 42 dollars received."
    events = [
        json.loads(line) for line in cli("stream", waiting.get_workflow_id(), "--json", *db).splitlines()
    ]
    assert events[0]["kind"] == "run_started" and events[-1]["kind"] == "run_finished"


def test_the_console_script_answers_and_says_what_is_wrong(launched: Database) -> None:
    command = [sys.executable, "-m", "crew_durable"]
    listed = subprocess.run(
        [*command, "runs", "--json", "--db", launched.url], cwd=ROOT, capture_output=True, text=True
    )
    assert listed.returncode == 0 and isinstance(json.loads(listed.stdout), list)
    unknown = subprocess.run(
        [*command, "show", "nope", "--db", launched.url], cwd=ROOT, capture_output=True, text=True
    )
    assert (
        unknown.returncode == 1
        and "No run has the id 'nope'" in unknown.stderr
        and "Traceback" not in unknown.stderr
    )
    missing = subprocess.run(
        [*command, "runs", "--db", f"sqlite:///{ROOT}/nothing-here.sqlite"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert not Path(f"{ROOT}/nothing-here.sqlite").exists()
