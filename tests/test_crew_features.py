"""crewAI features inside a durable crew: async tasks, output_json, guardrails,
conditional tasks and callbacks, uninterrupted and after a kill."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from dbos import SetWorkflowID

from tests.support import ledger
from tests.support.apps import editorial
from tests.support.cassettes import played, replay
from tests.support.databases import Database
from tests.support.processes import Harness
from tests.support.steps import work_steps

TASKS = [
    "Research solar power.",
    "Research wind power.",
    "Summarise the research.",
    "Write a headline for the summary.",
]


def test_the_crew_runs_as_crewai_runs_it(launched: Database, side_effects: Path) -> None:
    with replay("editorial.kickoff"):
        plain = editorial.build_crew().kickoff()
    ledger_lines_of_plain_run = len(ledger.entries(side_effects))
    workflow_id = f"editorial-{uuid.uuid4()}"
    with replay("editorial.kickoff") as cassette, SetWorkflowID(workflow_id):
        durable = editorial.editorial.kickoff()

    assert durable.model_dump(mode="json") == plain.model_dump(mode="json")
    assert durable.tasks_output[2].json_dict == {
        "title": "Cheaper clean power",
        "points": ["Solar is cheaper.", "Wind is cheaper."],
    }
    assert played(cassette) == 7
    kickoff_steps = work_steps(workflow_id)
    tasks = list(dict.fromkeys(s["child_workflow_id"] for s in kickoff_steps if s["child_workflow_id"]))
    assert len(tasks) == 4  # each task run is a child workflow, the async ones included
    guardrail = [s for s in kickoff_steps if s["function_name"] == "editorial.editor.llm"]
    assert len(guardrail) == 1  # the LLM guardrail's completion is a step of the kickoff
    durable_run = ledger.entries(side_effects)[ledger_lines_of_plain_run:]
    assert sorted(e["task"] for e in durable_run if e["tool"] == "task_callback") == sorted(TASKS)
    assert sum(e["tool"] == "headline_callback" for e in durable_run) == 1


@pytest.mark.parametrize(
    ("kill_point", "pause_at_request"),
    [("while the async research tasks run", 3), ("while the summary is written", 5)],
)
def test_a_killed_crew_with_async_tasks_resumes(
    kill_point: str, pause_at_request: int, system_database: Database, tmp_path: Path
) -> None:
    harness = Harness(system_database, tmp_path)
    workflow_id = f"editorial-{uuid.uuid4()}"
    harness.run_until_killed("editorial", "kickoff", workflow_id, pause_at_request=pause_at_request)
    done_before_kill = [e["task"] for e in ledger.entries(harness.ledger) if e["tool"] == "task_callback"]
    report = harness.run("recover", "editorial", "kickoff", workflow_id)

    result: dict[str, Any] = report["result"]
    assert result["raw"] == "Clean power keeps getting cheaper"
    assert result["token_usage"]["successful_requests"] == 7
    assert harness.requests() <= 7 + 2  # at most the requests in flight at the kill, again
    searches = ledger.count(harness.ledger, "search")
    recorded = json.dumps(report["tree"]).count('"search"')
    assert recorded == 2  # each research task's search is one step
    assert 2 <= searches <= 3  # a search in flight in the other thread at the kill runs again (at least once)
    # Plain callbacks fire again, in the recovering process, for tasks that had finished;
    # a callback that is a DBOS step is recorded once.
    callbacks = [e["task"] for e in ledger.entries(harness.ledger) if e["tool"] == "task_callback"]
    assert sorted(callbacks) == sorted(TASKS + done_before_kill)
    assert ledger.count(harness.ledger, "headline_callback") == 1
