"""The trio crew (three tasks, each a checkpointed tool between two completions) as harness scenarios.

Served live by the test's fake OpenAI server with ``trio.brain``: the faults
tests count its requests there and the ``act`` tool's real calls in the
ledger (one line per stage per run when nothing ran twice).
"""

from __future__ import annotations

from typing import Any

from tests.support.apps.trio import STAGES, brain, stage_of, trio

__all__ = ["EXPECTED", "STAGES", "brain", "stage_of"]

EXPECTED = {
    "raw": "The publish is finished: publish done",
    "tasks": [f"The {stage} is finished: {stage} done" for stage in STAGES],
}
"""What an uninterrupted kickoff returns."""


def kickoff() -> dict[str, Any]:
    output = trio.kickoff(inputs={})
    return {"raw": output.raw, "tasks": [task.raw for task in output.tasks_output]}


SCENARIOS = {"kickoff": kickoff}
