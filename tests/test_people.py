"""People in the loop: tool approvals and task feedback, answered from any process, across kills."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from dbos import SetWorkflowID

from crew_durable import AnswerRefusedError, CrewClient, DatabaseNotReadyError, InputRequest, _human_input
from tests.support import ledger
from tests.support.apps import checkout, reviewer
from tests.support.cassettes import played, replay
from tests.support.databases import Database
from tests.support.people import answering, wait_for_request
from tests.support.processes import Harness
from tests.support.steps import step_names, work_steps

ADA_NOTE = "Thank you, ada: 42 dollars received."


def _open(database: Database, run_id: str, kind: str) -> Callable[[], bool]:
    """Whether the run has an open request of ``kind`` (False until the database exists)."""

    def check() -> bool:
        try:
            with CrewClient(database.url) as client:
                return any(r.kind == kind for r in client.pending_input(run_id))
        except DatabaseNotReadyError:
            return False

    return check


def test_a_waiting_run_survives_kills_and_takes_answers_given_while_it_was_down(
    system_database: Database, tmp_path: Path
) -> None:
    harness = Harness(system_database, tmp_path)
    run_id = f"checkout-{uuid.uuid4()}"

    # 1. Killed while it waits for the charge's approval; approved while no process runs.
    assert harness.run_and_kill_when("checkout", "ada", run_id, _open(system_database, run_id, "approval"))
    with CrewClient(system_database.url) as client:
        [approval] = client.pending_input(run_id)
        assert (approval.kind, approval.tool, approval.arguments) == (
            "approval",
            "charge_card",
            {"customer": "ada", "amount": 42},
        )
        assert approval.run_id == run_id and approval.agent == "checkout.cashier"
        client.approve(approval.request_id)
        assert client.pending_input(run_id) == []  # answered: the run takes it when it is back
    assert ledger.count(harness.ledger, "charge") == 0

    # 2. Recovered: it charges, drafts the note, and is killed while it waits for feedback.
    assert harness.run_and_kill_when(
        "checkout", "ada", run_id, _open(system_database, run_id, "feedback"), mode="recover"
    )
    with CrewClient(system_database.url) as client:  # 3. a third process answers
        [review] = client.pending_input(run_id)
        assert (review.kind, review.message) == ("feedback", "Thank you, ada!")
        client.send_feedback(review.request_id, "Mention the amount.")

    # 4. Recovered again: it revises the note, asks again, and the person accepts.
    with answering(system_database.url, checkout.answer, run_id) as answered:
        report = harness.run("recover", "checkout", "ada", run_id)
    assert report["result"]["raw"] == ADA_NOTE
    assert [r.kind for r in answered] == ["feedback"]

    assert ledger.count(harness.ledger, "charge") == 1  # approved once, charged once
    assert harness.requests() == 4  # the uninterrupted run's requests: none paid twice
    assert [
        name for child in report["tree"] if isinstance(child, list) for name in child[1] if "approval" in name
    ] == ["checkout.cashier.input.approval"]
    with CrewClient(system_database.url) as client:
        events = list(client.stream(run_id))
        assert client.pending_input(run_id) == []
    asked = [e.data["request_id"] for e in events if e.kind == "input_requested"]
    assert len(asked) == 3 and len(set(asked)) == 3  # each question recorded once
    assert [e.text for e in events if e.kind == "input_answered"] == [
        "approved",
        "Mention the amount.",
        "accepted",
    ]


def test_a_denied_call_never_runs_and_the_model_is_told_why(launched: Database, side_effects: Path) -> None:
    run_id = f"checkout-bob-{uuid.uuid4()}"
    with (
        replay("checkout.bob") as cassette,
        answering(launched.url, checkout.answer, run_id) as answered,
        SetWorkflowID(run_id),
    ):
        output = checkout.checkout.kickoff(inputs=checkout.BOB)

    assert ledger.count(side_effects, "charge") == 0
    assert output.tasks_output[0].raw == "Not charged: over budget"  # what the model answered to the reason
    assert [(r.kind, r.tool) for r in answered] == [("approval", "charge_card"), ("feedback", None)]
    assert played(cassette) == 3
    charge_task, _ = dict.fromkeys(
        s["child_workflow_id"] for s in work_steps(run_id) if s["child_workflow_id"]
    )
    assert step_names(charge_task) == [
        "checkout.cashier.llm",
        "checkout.cashier.input.approval",
        "DBOS.recv",
        "DBOS.sleep",  # the wait's timeout, as DBOS records it
        "DBOS.updateWorkflowAttributes",
        "checkout.cashier.llm",
    ]  # the question, the wait, closing it: the tool never ran


def test_each_request_is_answered_once_and_bad_answers_say_why(
    launched: Database, side_effects: Path
) -> None:
    with replay("checkout.ada"):
        handle = checkout.checkout.start(inputs=checkout.ADA)
        run_id = handle.get_workflow_id()
        with CrewClient(launched.url) as client:
            approval = wait_for_request(client, run_id)
            with pytest.raises(
                AnswerRefusedError, match=r"asks for approval: answer it with approve\(\) or deny\(\)"
            ):
                client.send_feedback(approval.request_id, "yes")
            with pytest.raises(AnswerRefusedError, match="not the id of a request"):
                client.approve("no-such-request")
            with pytest.raises(AnswerRefusedError, match="not open"):
                client.approve(f"{run_id}#7")
            with pytest.raises(ValueError, match="needs a reason"):
                client.deny(approval.request_id, reason=" ")

            client.approve(approval.request_id)
            with pytest.raises(AnswerRefusedError, match="already approved"):
                client.approve(approval.request_id)
            with pytest.raises(AnswerRefusedError, match="already approved"):
                client.deny(approval.request_id, reason="changed my mind")

            with answering(launched.url, checkout.answer, run_id):
                assert handle.get_result(polling_interval_sec=0.05).raw == ADA_NOTE
            with pytest.raises(AnswerRefusedError, match="already approved"):
                client.approve(approval.request_id)
    assert ledger.count(side_effects, "charge") == 1


def test_concurrent_answers_to_one_request_decide_once(launched: Database, side_effects: Path) -> None:
    """Two people answer the same request at the same moment: one wins, the other is told."""
    with replay("checkout.ada"):
        handle = checkout.checkout.start(inputs=checkout.ADA)
        run_id = handle.get_workflow_id()
        with CrewClient(launched.url) as client:
            approval = wait_for_request(client, run_id)
            outcomes: list[str] = []
            barrier = threading.Barrier(4)

            def answer(decide: Callable[[CrewClient, InputRequest], None]) -> None:
                with CrewClient(launched.url) as own:
                    barrier.wait()
                    try:
                        decide(own, approval)
                        outcomes.append("accepted")
                    except AnswerRefusedError:
                        outcomes.append("refused")

            people = [
                threading.Thread(target=answer, args=(lambda c, r: c.approve(r.request_id),))
                for _ in range(4)
            ]
            for person in people:
                person.start()
            for person in people:
                person.join()
            assert sorted(outcomes) == ["accepted", "refused", "refused", "refused"]
            with answering(launched.url, checkout.answer, run_id):
                output = handle.get_result(polling_interval_sec=0.05)
    assert output.raw == ADA_NOTE
    assert ledger.count(side_effects, "charge") == 1


def test_a_client_on_a_database_no_application_created_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DBOS_SYSTEM_DATABASE_URL", raising=False)
    with pytest.raises(DatabaseNotReadyError, match="does not exist"):
        CrewClient(f"sqlite:///{tmp_path}/nothing.sqlite")
    (tmp_path / "empty.sqlite").touch()
    with pytest.raises(DatabaseNotReadyError, match="No DBOS application has created its tables"):
        CrewClient(f"sqlite:///{tmp_path}/empty.sqlite")
    with pytest.raises(DatabaseNotReadyError, match="needs the DBOS system database URL"):
        CrewClient("")


def test_task_feedback_is_a_durable_question_not_the_console(launched: Database) -> None:
    workflow_id = f"slogan-{uuid.uuid4()}"
    with (
        replay("reviewer.slogan"),
        answering(launched.url, reviewer.answer, workflow_id) as answered,
        SetWorkflowID(workflow_id),
    ):
        assert reviewer.slogan() == "Crash. Resume."  # stdin is pytest's: input() would raise

    assert [r.message for r in answered] == [
        "Agents that crash and resume where they stopped.",
        "Crash. Resume.",
    ]
    assert [name for name in step_names(workflow_id) if "." in name and "DBOS" not in name] == [
        "reviewed_writer.llm",
        "reviewed_writer.input.feedback",
        "reviewed_writer.llm",
        "reviewed_writer.input.feedback",
    ]


def test_a_recovered_run_does_not_ask_again_what_was_answered(
    system_database: Database, tmp_path: Path
) -> None:
    harness = Harness(system_database, tmp_path)
    workflow_id = f"slogan-{uuid.uuid4()}"
    with answering(system_database.url, reviewer.answer, workflow_id) as first:
        # Request 2 is the rewrite the first answer asked for: killed while it is in flight.
        harness.run_until_killed("reviewer", "slogan", workflow_id, pause_at_request=2)
    with answering(system_database.url, reviewer.answer, workflow_id) as second:
        report = harness.run("recover", "reviewer", "slogan", workflow_id)

    assert report["result"] == "Crash. Resume."
    assert [r.message for r in first] == ["Agents that crash and resume where they stopped."]
    assert [r.message for r in second] == ["Crash. Resume."]  # the first question was not asked again
    assert harness.requests() == 2 + 1  # the rewrite in flight at the kill is the only repeat


def test_a_wait_that_times_out_denies_the_call_and_accepts_the_note(
    launched: Database, side_effects: Path
) -> None:
    run_id = f"hurried-{uuid.uuid4()}"
    with replay("checkout.unanswered") as cassette, SetWorkflowID(run_id):
        output = checkout.hurried.kickoff(inputs=checkout.ADA)

    assert ledger.count(side_effects, "charge") == 0
    assert (
        output.tasks_output[0].raw == "Not charged: no decision within 1 seconds"
    )  # what the model was told
    assert output.raw == "Sorry ada, Not charged."  # the unreviewed note stands, as if accepted
    assert played(cassette) == 3
    with CrewClient(launched.url) as client:
        answers = [e.text for e in client.stream(run_id) if e.kind == "input_answered"]
        assert answers == ["no answer in time", "no answer in time"]
        assert client.pending_input(run_id) == []
        requests = [e.data["request_id"] for e in client.stream(run_id) if e.kind == "input_requested"]
        with pytest.raises(
            AnswerRefusedError, match="closed: the run stopped waiting when its timeout passed"
        ):
            client.approve(requests[0])  # a late answer


@pytest.mark.parametrize("scenario", ["inline", "started", "enqueued"])
def test_a_provider_set_with_crewais_set_provider_answers_inline_started_and_enqueued_runs(
    system_database: Database, tmp_path: Path, scenario: str
) -> None:
    harness = Harness(system_database, tmp_path)  # no terminal: stdin is /dev/null
    report = harness.run("run", "hotline", scenario, f"hotline-{uuid.uuid4()}")
    assert report["result"] == "Hello, you are through to the hotline."
    expected = {"inline": "inline", "started": "start", "enqueued": "enqueue"}[scenario]
    assert [e["provider"] for e in ledger.entries(harness.ledger)] == [expected]


def test_the_process_wide_provider_answers_a_recovered_run(system_database: Database, tmp_path: Path) -> None:
    harness = Harness(system_database, tmp_path)
    workflow_id = f"hotline-{uuid.uuid4()}"
    harness.run_until_killed("hotline", "process", workflow_id, pause_at_request=1)
    report = harness.run("recover", "hotline", "process", workflow_id)  # on a DBOS thread, no terminal
    assert report["result"] == "Hello, you are through to the hotline."
    assert [e["provider"] for e in ledger.entries(harness.ledger)] == ["process"]


def test_a_cancelled_waiting_run_lets_its_thread_go_and_resumes_still_waiting(
    launched: Database, side_effects: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_human_input, "WAIT_SLICE_SECONDS", 0.5)  # (10 minutes outside tests)
    with replay("checkout.ada"), CrewClient(launched.url) as client:
        handle = checkout.checkout.start(inputs=checkout.ADA)
        run_id = handle.get_workflow_id()
        approval = wait_for_request(client, run_id)
        client.cancel(run_id)
        with pytest.raises(Exception, match="cancelled"):
            handle.get_result(polling_interval_sec=0.05)  # the waiting thread ended
        assert client.status(run_id).status == "CANCELLED"

        client.resume(run_id)
        assert wait_for_request(client, run_id).request_id == approval.request_id  # the same question
        with answering(launched.url, checkout.answer, run_id):
            assert client.result(run_id).raw == ADA_NOTE
    assert ledger.count(side_effects, "charge") == 1
