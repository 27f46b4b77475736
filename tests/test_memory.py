"""crewAI memory inside a durable crew: recalls and saves are steps, never written twice.

The notebook app runs only in fresh interpreters, each pair sharing a crewAI
storage directory (see tests/support/apps/notebook.py).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tests.support.databases import Database
from tests.support.processes import Harness

REQUESTS = 16  # uninterrupted: 4 agent completions, 7 of the memory's LLM, 5 embeddings


def run_uninterrupted(database: Database, directory: Path) -> dict[str, Any]:
    directory.mkdir()
    return Harness(database, directory, fresh=True).run("run", "notebook", "kickoff", f"ref-{uuid.uuid4()}")


def test_memory_is_recalled_from_and_saved_to_steps_once_across_a_kill(
    system_database: Database, tmp_path: Path
) -> None:
    reference = run_uninterrupted(system_database, tmp_path / "reference")
    harness = Harness(system_database, tmp_path, fresh=True)
    workflow_id = f"notebook-{uuid.uuid4()}"
    # Request 9 embeds the second task's recall query: the first task, its memory
    # tool call and its automatic memory save are all finished.
    harness.run_until_killed("notebook", "kickoff", workflow_id, pause_at_request=9)
    report = harness.run("recover", "notebook", "kickoff", workflow_id)

    assert report["result"]["raw"] == "The launch code is 4242."
    assert report["result"] == reference["result"]  # the same memories: nothing saved twice
    assert harness.requests() <= REQUESTS + 1
    steps = report["steps"]
    assert steps.count("notebook.note_taker.memory.recall") == 2
    assert sum(1 for name in steps if name.endswith(".llm")) == 0  # the kickoff's own steps
