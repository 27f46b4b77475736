"""Operating runs: fork from a task or a step without paying again, cancel and resume a whole run."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from dbos import DBOS, SetWorkflowID

from crew_durable import CrewClient, CrewDurableError, UnknownRunError
from tests.support import ledger
from tests.support.apps import trio
from tests.support.cassettes import FAKE_PORT
from tests.support.databases import Database
from tools.fake_openai import FakeOpenAI, serve

OUTPUT = "The publish is finished: publish done"


@pytest.fixture
def model(fixed_ports: None) -> Iterator[FakeOpenAI]:
    """The trio's model, live on the cassettes' port: requests are counted at the server."""
    with serve(trio.brain, port=FAKE_PORT) as server:
        yield server


def _stages(server: FakeOpenAI, since: int = 0) -> Counter[str]:
    return Counter(trio.stage_of(body) for body in server.requests[since:])


def _acted(ledger_path: Path) -> Counter[str]:
    return Counter(e["stage"] for e in ledger.entries(ledger_path))


def test_a_fork_from_a_task_pays_only_for_that_task_and_what_follows(
    launched: Database, side_effects: Path, model: FakeOpenAI
) -> None:
    run_id = f"trio-{uuid.uuid4()}"
    with SetWorkflowID(run_id):
        assert trio.trio.kickoff().raw == OUTPUT
    assert _stages(model) == {"gather": 2, "draft": 2, "publish": 2}

    before = len(model.requests)
    fork = trio.trio.fork(run_id, task=3)
    assert fork.get_result().raw == OUTPUT
    assert _stages(model, before) == {"publish": 2}  # task 3 only, counted at the server
    assert _acted(side_effects) == {
        "gather": 1,
        "draft": 1,
        "publish": 2,
    }
    assert [t.raw for t in fork.get_result().tasks_output][:2] == [
        "The gather is finished: gather done",
        "The draft is finished: draft done",
    ]

    with CrewClient(launched.url) as client:  # the same from a process without the crew code
        before = len(model.requests)
        again = client.fork(run_id, task=2)
        assert again.get_result().raw == OUTPUT
        assert _stages(model, before) == {"draft": 2, "publish": 2}
        assert client.status(again.workflow_id).attributes["crew_durable.forked_from"] == {
            "run": run_id,
            "task": 2,
            "step": None,
        }


def test_a_fork_from_a_step_requests_nothing_before_it(
    launched: Database, side_effects: Path, model: FakeOpenAI
) -> None:
    run_id = f"trio-{uuid.uuid4()}"
    with SetWorkflowID(run_id):
        trio.trio.kickoff()
    with CrewClient(launched.url) as client:
        tasks = dict.fromkeys(s["child_workflow_id"] for s in DBOS.list_workflow_steps(run_id))
        draft = [task for task in tasks if task][1]
        steps = [(s["function_id"], s["function_name"]) for s in DBOS.list_workflow_steps(draft)]
        tool = next(number for number, name in steps if name == "act")
        after_tool = next(number for number, name in steps if number > tool and name.endswith(".llm"))

        before = len(model.requests)
        fork = client.fork(run_id, task=2, step=after_tool)  # reuse the draft's first completion and tool
        assert fork.get_result().raw == OUTPUT
    assert _stages(model, before) == {"draft": 1, "publish": 2}  # nothing before the step
    assert _acted(side_effects) == {
        "gather": 1,
        "draft": 1,
        "publish": 2,
    }


def test_fork_says_what_is_wrong(launched: Database, model: FakeOpenAI) -> None:
    run_id = f"trio-{uuid.uuid4()}"
    with SetWorkflowID(run_id):
        trio.trio.kickoff()
    with CrewClient(launched.url) as client:
        with pytest.raises(UnknownRunError, match="No run has the id 'nope'"):
            client.fork("nope", task=1)
        with pytest.raises(CrewDurableError, match="started tasks 1 to 3; there is no task 4"):
            client.fork(run_id, task=4)
        with pytest.raises(CrewDurableError, match="step 999 is outside it"):
            client.fork(run_id, task=2, step=999)
        with pytest.raises(CrewDurableError, match="is not a crew kickoff"):
            client.fork(f"{run_id}-2", task=1)


def test_cancel_stops_the_whole_run_and_resume_finishes_it(
    launched: Database, side_effects: Path, model: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trio, "DELAY", 0.3)
    handle = trio.trio.start()
    run_id = handle.get_workflow_id()
    with CrewClient(launched.url) as client:
        while not ledger.entries(side_effects):  # the first task's tool has run
            time.sleep(0.02)
        client.cancel(run_id)
        cancelled_at = len(model.requests)
        time.sleep(1.5)  # long enough for several more completions, had the task gone on
        assert len(model.requests) <= cancelled_at + 1  # at most the one in flight
        statuses = {w.workflow_id: w.status for w in DBOS.list_workflows(workflow_id_prefix=run_id)}
        assert set(statuses.values()) <= {"CANCELLED", "SUCCESS"} and statuses[run_id] == "CANCELLED"
        assert statuses[f"{run_id}-2"] == "CANCELLED"  # the task that was running, not only the kickoff

        client.resume(run_id)
        assert client.result(run_id).raw == OUTPUT
        assert client.status(run_id).status == "SUCCESS"
    assert _acted(side_effects) == {
        "gather": 1,
        "draft": 1,
        "publish": 1,
    }
    assert (
        len(model.requests) <= 6 + 1
    )  # the uninterrupted run's, and at most the one in flight at the cancel
