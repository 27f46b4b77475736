"""The steps of a durable run that do the work: completions, tools, child runs, answers.

Besides those, a run records bookkeeping operations: DBOS's own
``DBOS.getResult`` and crew_durable's ``crew_durable.stream_event`` (each
event written to the run's stream). Tests that compare step sequences
look at the work.
"""

from __future__ import annotations

from dbos import DBOS, StepInfo

BOOKKEEPING = frozenset({"DBOS.getResult", "crew_durable.stream_event"})


def work_steps(workflow_id: str) -> list[StepInfo]:
    return [s for s in DBOS.list_workflow_steps(workflow_id) if s["function_name"] not in BOOKKEEPING]


def step_names(workflow_id: str) -> list[str]:
    return [s["function_name"] for s in work_steps(workflow_id)]
