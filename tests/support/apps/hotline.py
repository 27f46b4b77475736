"""A crew whose feedback comes from a custom crewAI HumanInputProvider, in every durable run path.

The app registers a provider for the whole process with
``crew_durable.set_human_input_provider``; a scenario may also set one with
crewAI's own ``set_provider`` in the context that kicks the run off. Each
provider writes to the ledger which one answered, and accepts the answer.
Harness processes have no terminal (stdin is /dev/null): falling back to
crewAI's console prompt would fail with EOFError.
"""

from __future__ import annotations

from typing import Any

from crewai import Agent, Crew, Task
from crewai.agents.parser import AgentFinish
from crewai.core.providers.human_input import ExecutorContext, SyncHumanInputProvider, set_provider
from dbos import DBOS

from crew_durable import DBOSCrew, set_human_input_provider
from tests.support import ledger
from tests.support.cassettes import fake_llm


class LedgerProvider(SyncHumanInputProvider):
    """Accepts every answer, and notes in the ledger that it was asked."""

    def __init__(self, name: str) -> None:
        self.name = name

    def handle_feedback(self, formatted_answer: AgentFinish, context: ExecutorContext) -> AgentFinish:
        ledger.record("provider_asked", provider=self.name, answer=str(formatted_answer.output))
        return formatted_answer


FORK_SERVER = False  # it sets a process-wide provider: not for the fork server, which imports every app
set_human_input_provider(LedgerProvider("process"))

operator = Agent(role="Operator", goal="Answer calls", backstory="Calm.", llm=fake_llm())
hotline = DBOSCrew(
    crew_name="hotline",
    orig_crew=Crew(
        agents=[operator],
        tasks=[
            Task(
                description="Greet the caller.",
                expected_output="A greeting",
                agent=operator,
                human_input=True,
            )
        ],
    ),
)


def inline() -> str:
    set_provider(LedgerProvider("inline"))
    return hotline.kickoff().raw


def started() -> str:
    set_provider(LedgerProvider("start"))
    return hotline.start().get_result(polling_interval_sec=0.05).raw


def enqueued() -> str:
    set_provider(LedgerProvider("enqueue"))
    DBOS.register_queue("hotline", worker_concurrency=1, polling_interval_sec=0.1)
    return hotline.enqueue(queue_name="hotline").get_result(polling_interval_sec=0.05).raw


def process() -> str:
    return hotline.kickoff().raw


SCENARIOS = {"inline": inline, "started": started, "enqueued": enqueued, "process": process}


def brain(body: dict[str, Any]) -> dict[str, Any]:
    return {"content": "Thought: greet\nFinal Answer: Hello, you are through to the hotline."}
