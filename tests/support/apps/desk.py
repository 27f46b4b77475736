"""A durable flow that asks people: a ``@human_feedback`` review, then ``Flow.ask()`` in the next method.

No model is called: the run's only waits are for people, answered with
``CrewClient`` from another process. Each method body writes a ledger line,
so a method run again after a recovery shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from crewai.flow.flow import Flow, listen, start
from crewai.flow.human_feedback import HumanFeedbackResult, human_feedback
from pydantic import BaseModel

from crew_durable import DBOSFlow
from tests.support import ledger

DRAFT = "Tides turn twice a day."


class DeskState(BaseModel):
    id: str = ""
    counter: int = 0
    feedback: str = ""


class DeskFlow(Flow[DeskState]):
    @start()
    @human_feedback(message="Approve this draft?")
    def draft(self) -> str:
        self.state.counter += 1
        ledger.record("draft")
        return DRAFT

    @listen(draft)
    def sign(self, review: HumanFeedbackResult) -> dict[str, Any]:
        self.state.counter += 1
        self.state.feedback = review.feedback
        signer = self.ask("Who signs the piece?")
        ledger.record("sign", signer=signer)
        return {
            "output": review.output,
            "feedback": review.feedback,
            "signer": signer,
            "counter": self.state.counter,
        }


desk = DBOSFlow(flow_name="desk", flow=DeskFlow)


def kickoff() -> dict[str, Any]:
    return {"result": desk.kickoff(), "state": desk.state}


SCENARIOS = {"kickoff": kickoff}


class _NoModel:
    play_counts: dict[int, int] = {}  # noqa: RUF012  (no model: nothing is ever played)


@contextmanager
def cassette() -> Iterator[_NoModel]:
    yield _NoModel()
