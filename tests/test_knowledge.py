"""crewAI knowledge inside a durable crew, across a SIGKILL.

At every kickoff crewAI embeds the agent's knowledge sources and, before each
task, has the agent's LLM rewrite the task into a search query (a completion,
so a step of the kickoff workflow) and embeds that query to search the vector
store (a request that is not a step). Uninterrupted, the library crew makes 4
chat completions (a query rewrite and an answer per task) and 3 embeddings
requests (the source, then one query per task).

A recovered kickoff requests no recorded completion again, only the one in
flight at the kill. But it makes every embeddings request of an uninterrupted
run again: it embeds the source again (an upsert: the store still holds one
document) and the query of every task it replays. Recovery thus costs as
many extra embeddings requests as the killed process had made: 3 when killed
in the second task's answer.

The library app runs only in fresh interpreters, each pair sharing a crewAI
storage directory (see tests/support/apps/library.py).
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support import databases
from tests.support.apps.library import FACTS
from tests.support.databases import Database
from tests.support.processes import Harness

COMPLETIONS, EMBEDDINGS = 4, 3  # uninterrupted
# The requests in order: embed the source; task 1 rewrites its query, embeds it and
# answers (2-4); task 2 does the same (5-7).
SECOND_ANSWER = 7


def requests_by_endpoint(harness: Harness) -> Counter[str]:
    """How many requests each endpoint answered, across the harness's processes so far."""
    lines = harness.request_log.read_text().splitlines() if harness.request_log.exists() else []
    return Counter(line.split()[2].rsplit("/v1/", 1)[1] for line in lines)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Counter[str]]:
    """An uninterrupted run's result and requests (they do not depend on the database)."""
    directory = tmp_path_factory.mktemp("reference")
    harness = Harness(databases.create("sqlite", directory), directory, fresh=True)
    report = harness.run("run", "library", "kickoff", f"ref-{uuid.uuid4()}")
    return report["result"], requests_by_endpoint(harness)


def test_a_kickoff_embeds_the_source_and_each_task_query_once(
    reference: tuple[dict[str, Any], Counter[str]],
) -> None:
    result, requests = reference
    assert [task["raw"] for task in result["tasks_output"]] == [
        "The launch code is 4242.",
        "The launch site is Kourou.",
    ]
    assert requests == {"chat/completions": COMPLETIONS, "embeddings": EMBEDDINGS}
    assert result["documents"] == [FACTS]


def test_recovery_embeds_the_knowledge_again_but_requests_no_recorded_completion(
    system_database: Database, tmp_path: Path, reference: tuple[dict[str, Any], Counter[str]]
) -> None:
    harness = Harness(system_database, tmp_path, fresh=True)
    workflow_id = f"library-{uuid.uuid4()}"
    harness.run_until_killed("library", "kickoff", workflow_id, pause_at_request=SECOND_ANSWER)
    killed = requests_by_endpoint(harness)
    report = harness.run("recover", "library", "kickoff", workflow_id)
    recovered = requests_by_endpoint(harness) - killed

    assert report["result"] == reference[0]  # the same answers, and still one document
    assert killed["chat/completions"] + recovered["chat/completions"] == COMPLETIONS + 1  # the one in flight
    assert recovered["embeddings"] == EMBEDDINGS  # the source and both queries, all again
    assert killed["embeddings"] == EMBEDDINGS  # so recovery cost 3 more than an uninterrupted run
    assert report["steps"].count("library.librarian.llm") == 2  # the query rewrites, recorded
