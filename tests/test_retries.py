"""crewAI's automatic task retries get workflow ids derived from the first attempt's."""

from __future__ import annotations

import uuid

import pytest
from dbos import DBOS, SetWorkflowID

from crew_durable import RecordedError
from tests.support.apps import rejected
from tests.support.cassettes import played, replay
from tests.support.databases import Database


def test_a_failed_task_and_its_retry_replay_from_their_records(launched: Database) -> None:
    workflow_id = f"greet-{uuid.uuid4()}"
    with (
        replay("rejected.execute_task") as cassette,
        SetWorkflowID(workflow_id),
        pytest.raises(RecordedError) as first,
    ):
        rejected.execute_task()
    assert played(cassette) == 2  # the attempt and crewAI's one retry (max_retry_limit=1)
    retry = DBOS.get_workflow_status(f"{workflow_id}-retry-1")
    assert retry is not None and retry.status == "ERROR"

    with (
        replay("rejected.execute_task") as cassette,
        SetWorkflowID(workflow_id),
        pytest.raises(RecordedError) as second,
    ):
        rejected.execute_task()

    assert played(cassette) == 0
    assert str(second.value) == str(first.value)
    assert second.value.status_code == first.value.status_code == 401
