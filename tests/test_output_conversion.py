"""output_json answers crewAI converts with instructor: the conversion is a step, paid once."""

from __future__ import annotations

import uuid
from pathlib import Path

from dbos import SetWorkflowID

from crew_durable._outputs import crew_output_to_json
from tests.support.apps import tally
from tests.support.cassettes import played, replay
from tests.support.databases import Database
from tests.support.processes import Harness
from tests.support.steps import work_steps

TALLY = {"winner": "yes", "votes_for": 3, "votes_against": 1}
UNINTERRUPTED_REQUESTS = 4  # the count's tool call and answer, the conversion, the announcement


def test_a_conversion_reaches_the_providers_server_and_is_a_step_of_the_kickoff(launched: Database) -> None:
    with replay("tally.kickoff"):
        plain = tally.build_crew().kickoff()
    workflow_id = f"tally-{uuid.uuid4()}"
    with replay("tally.kickoff") as cassette, SetWorkflowID(workflow_id):
        durable = tally.tally.kickoff()

    assert durable.tasks_output[0].json_dict == TALLY
    assert crew_output_to_json(durable) == crew_output_to_json(plain)
    assert played(cassette) == UNINTERRUPTED_REQUESTS
    steps = [s["function_name"] for s in work_steps(workflow_id)]
    assert steps.count("tally.vote_counter.output_json") == 1


def test_a_recovered_kickoff_replays_the_conversion(system_database: Database, tmp_path: Path) -> None:
    harness = Harness(system_database, tmp_path)
    workflow_id = f"tally-{uuid.uuid4()}"
    harness.run_until_killed("tally", "kickoff", workflow_id, pause_at_request=4)  # announcing
    report = harness.run("recover", "tally", "kickoff", workflow_id)

    assert report["result"]["tasks_output"][0]["json_dict"] == TALLY
    assert report["result"]["raw"] == "Hear ye: the ayes have it, 3 to 1!"
    assert report["steps"].count("tally.vote_counter.output_json") == 1
    assert harness.requests() == UNINTERRUPTED_REQUESTS + 1  # only the announcement in flight, again
