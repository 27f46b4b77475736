"""No API key, auth header or provider credential is ever written to the system database."""

from __future__ import annotations

import base64
import pickle
import uuid

import httpx
import openai
import pytest
from dbos import SetWorkflowID

from crew_durable import RecordedError
from tests.support.apps import calculator, rejected
from tests.support.cassettes import API_KEY, replay
from tests.support.databases import Database, reveal
from tests.support.steps import work_steps


def test_the_dump_would_reveal_a_key_hidden_in_a_pickled_provider_error() -> None:
    """The check below can fail: a pickled openai error carries the request's auth header."""
    request = httpx.Request(
        "POST", "https://api.openai.com/v1/chat/completions", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    error = openai.AuthenticationError("denied", response=httpx.Response(401, request=request), body=None)
    stored = base64.b64encode(pickle.dumps(error)).decode()
    assert API_KEY not in stored
    assert API_KEY in reveal(stored)


def test_the_system_database_never_holds_the_api_key(launched: Database) -> None:
    with replay("calculator.execute_task"), SetWorkflowID(f"task-{uuid.uuid4()}"):
        calculator.execute_task()
    failed_id = f"rejected-{uuid.uuid4()}"
    with replay("rejected.execute_task"), SetWorkflowID(failed_id), pytest.raises(RecordedError) as raised:
        rejected.execute_task()

    # The provider's error is kept as plain data crewAI can still classify...
    assert raised.value.status_code == 401
    assert raised.value.error_type == "openai.AuthenticationError"
    [step] = work_steps(failed_id)
    assert isinstance(step["error"], RecordedError)
    assert step["error"].status_code == 401
    # ...and neither it nor anything else stored carries the key the request was sent with.
    dump = launched.dump()
    assert "Incorrect API key provided" in dump or "AuthenticationError" in dump
    assert API_KEY not in dump
    assert "Bearer" not in dump
