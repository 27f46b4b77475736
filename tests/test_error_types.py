"""Recorded provider and tool errors keep their type: ``except openai.AuthenticationError`` still works."""

from __future__ import annotations

import pickle
import threading
import uuid
from typing import Any

import httpx
import openai
import pytest
from crewai import Agent, Task
from crewai.tools import tool
from dbos import DBOS, SetWorkflowID

from crew_durable import DBOSAgent, RecordedError
from crew_durable._errors import rebuilt, unwrap_step_error
from tests.support.apps import rejected
from tests.support.cassettes import API_KEY, FAKE_PORT, fake_llm, played, replay
from tests.support.databases import Database
from tests.support.processes import last_json, run_python
from tests.support.steps import work_steps
from tools.fake_openai import serve, tool_call


def _authentication_error() -> openai.AuthenticationError:
    request = httpx.Request(
        "POST", "https://api.openai.com/v1/chat", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    response = httpx.Response(401, request=request)
    return openai.AuthenticationError("Incorrect API key provided: sk-****", response=response, body=None)


def test_a_recorded_provider_error_is_of_its_original_type_without_the_request() -> None:
    recorded = RecordedError.of(_authentication_error())

    assert isinstance(recorded, openai.AuthenticationError)
    assert isinstance(recorded, openai.APIStatusError)
    assert isinstance(recorded, RecordedError)
    assert (recorded.status_code, str(recorded), recorded.message) == (
        401,
        "Incorrect API key provided: sk-****",
        str(recorded),
    )
    assert recorded.response is None and recorded.request is None and recorded.body is None
    stored = pickle.dumps(recorded)
    assert API_KEY.encode() not in stored and b"Bearer" not in stored
    back = pickle.loads(stored)
    assert type(back) is type(recorded)
    assert back.original is None  # the live exception stays in the process where it happened
    assert recorded.original is not None


def test_a_class_this_process_does_not_have_is_matched_by_name() -> None:
    error = rebuilt("boom", "some_provider_sdk.errors.QuotaError", 402)

    assert isinstance(error, RecordedError)
    assert type(error).__name__ == "QuotaError"
    assert error.error_type == "some_provider_sdk.errors.QuotaError"
    assert (error.status_code, error.code, str(error)) == (402, "QuotaError", "boom")
    assert type(rebuilt("again", "some_provider_sdk.errors.QuotaError")) is type(error)


def test_builtin_errors_of_tools_come_back_as_themselves() -> None:
    error = unwrap_step_error(RecordedError("bad amount", "builtins.ValueError"))  # as older records hold it
    assert isinstance(error, ValueError) and isinstance(error, RecordedError)
    assert str(error) == "bad amount"


def test_a_401_is_caught_as_openai_authentication_error_live_and_on_replay(launched: Database) -> None:
    workflow_id = f"rejected-{uuid.uuid4()}"
    with (
        replay("rejected.execute_task"),
        SetWorkflowID(workflow_id),
        pytest.raises(openai.AuthenticationError) as first,
    ):
        rejected.execute_task()
    [step, *_] = work_steps(workflow_id)
    assert isinstance(step["error"], openai.AuthenticationError)  # read back from the database

    with (
        replay("rejected.execute_task") as cassette,
        SetWorkflowID(workflow_id),
        pytest.raises(openai.AuthenticationError) as second,
    ):
        rejected.execute_task()

    assert played(cassette) == 0
    assert isinstance(second.value, RecordedError)
    assert str(second.value) == str(first.value)
    assert "Incorrect API key provided" in str(second.value)
    assert second.value.status_code == 401
    dump = launched.dump()
    assert API_KEY not in dump and "Bearer" not in dump


_REPLAY_IN_NEW_PROCESS = """
import json, sys
import openai
from dbos import DBOS, SetWorkflowID
from crew_durable import RecordedError, dbos_config
from tests.support.apps import rejected
DBOS(config=dbos_config("crew_durable_tests", sys.argv[1]))
DBOS.launch()
try:
    with SetWorkflowID(sys.argv[2]):
        rejected.execute_task()
except openai.AuthenticationError as error:
    print(json.dumps({"caught": type(error).__qualname__, "recorded": isinstance(error, RecordedError),
                      "message": str(error), "status": error.status_code}))
DBOS.destroy()
"""


def test_a_new_process_replaying_the_run_catches_the_same_type(launched: Database) -> None:
    workflow_id = f"rejected-{uuid.uuid4()}"
    with (
        replay("rejected.execute_task"),
        SetWorkflowID(workflow_id),
        pytest.raises(openai.AuthenticationError) as first,
    ):
        rejected.execute_task()

    report = last_json(run_python(_REPLAY_IN_NEW_PROCESS, launched.url, workflow_id))
    assert report == {
        "caught": "AuthenticationError",
        "recorded": True,
        "message": str(first.value),
        "status": 401,
    }


lock_calls = {"count": 0}


@tool
@DBOS.step()
def open_vault(name: str) -> Any:
    """Open a vault; returns its lock."""
    lock_calls["count"] += 1
    return threading.Lock()  # not data: DBOS cannot pickle it


vault_keeper = DBOSAgent(
    agent_name="error_types.vault_keeper",
    orig_agent=Agent(
        role="Keeper", goal="Open vaults", backstory="Careful.", tools=[open_vault], llm=fake_llm()
    ),
)


def _vault_brain(body: dict[str, Any]) -> dict[str, Any]:
    results = [str(m["content"]) for m in body["messages"] if m["role"] == "tool"]
    if not results:
        return {"tool_calls": [tool_call("open_vault", {"name": "north"}, "call_vault")]}
    return {"content": f"Could not: {results[0]}"}


def test_a_step_tool_whose_result_cannot_be_pickled_is_named_with_what_to_do(
    launched: Database, fixed_ports: None, caplog: pytest.LogCaptureFixture
) -> None:
    lock_calls["count"] = 0
    task = Task(description="Open the north vault.", expected_output="Done", agent=vault_keeper)
    with serve(_vault_brain, port=FAKE_PORT) as server, SetWorkflowID(f"vault-{uuid.uuid4()}"):
        answer = str(vault_keeper.execute_task(task))

    told = next(str(m["content"]) for m in server.requests[-1]["messages"] if m["role"] == "tool")
    assert "The tool 'open_vault' is a DBOS step" in told
    assert "cannot be pickled" in told and "str(result)" in told
    assert "The tool 'open_vault'" in answer
    assert "The tool 'open_vault'" in caplog.text  # the developer sees it too, not only the model
    assert lock_calls["count"] == 1
