"""Durable flows that ask people: a ``@human_feedback`` review, then ``Flow.ask()`` in the next method.

``desk`` calls no model: the run's only waits are for people, answered with
``CrewClient`` from another process. Each method body writes a ledger line,
so a method run again after a recovery shows. ``gate``'s review routes the
flow: an LLM collapses the person's feedback to ``approved`` or ``rejected``.
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
from tests.support.cassettes import fake_llm

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


class GateFlow(Flow[dict[str, Any]]):
    """A review whose feedback an LLM collapses to an outcome that routes the flow."""

    @start()
    @human_feedback(message="Publish it?", emit=["approved", "rejected"], llm=fake_llm())
    def propose(self) -> str:
        ledger.record("propose")
        return DRAFT

    @listen("approved")
    def publish(self, review: HumanFeedbackResult) -> dict[str, Any]:
        return {"published": review.output, "feedback": review.feedback, "outcome": review.outcome}

    @listen("rejected")
    def shelve(self, review: HumanFeedbackResult) -> dict[str, Any]:
        return {"shelved": review.output, "feedback": review.feedback, "outcome": review.outcome}


desk = DBOSFlow(flow_name="desk", flow=DeskFlow)
gate = DBOSFlow(flow_name="gate", flow=GateFlow)


def kickoff() -> dict[str, Any]:
    return {"result": desk.kickoff(), "state": desk.state}


SCENARIOS = {"kickoff": kickoff}


class _NoModel:
    play_counts: dict[int, int] = {}  # noqa: RUF012  (no model: nothing is ever played)


@contextmanager
def cassette() -> Iterator[_NoModel]:
    yield _NoModel()
