"""Output models defined inside a function: the run works, and a recovered run gets an equivalent model."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from crewai import Task
from dbos import SetWorkflowID
from pydantic import BaseModel, Field

from crew_durable._output_models import (
    LocalOutputModelWarning,
    model_from_reference,
    model_from_schema,
    model_reference,
)
from tests.support import harness, ledger
from tests.support.apps import inspector
from tests.support.cassettes import FAKE_PORT
from tests.support.databases import Database
from tests.support.processes import Harness, last_json, run_python
from tools.fake_openai import serve


def test_a_model_rebuilt_from_its_schema_has_the_same_schema_and_validates_the_same_data() -> None:
    def define() -> type[BaseModel]:
        class Part(BaseModel):
            name: str
            weight: float = 1.5

        class Shipment(BaseModel):
            """A shipment."""

            count: int = Field(description="How many")
            parts: list[Part]
            main: Part
            tags: dict[str, int] = {}
            note: str | None = None

        return Shipment

    original = define()
    with pytest.warns(LocalOutputModelWarning, match=r"Shipment is defined inside a function"):
        reference = model_reference(original)
    assert isinstance(reference, dict)
    rebuilt = model_from_schema(reference["schema"], "somewhere", "define.<locals>.Shipment")

    assert rebuilt.model_json_schema() == original.model_json_schema()
    data = original(count=2, parts=[{"name": "bolt"}], main={"name": "nut", "weight": 2}).model_dump(
        mode="json"
    )
    assert rebuilt.model_validate(data).model_dump(mode="json") == data
    assert model_from_reference(reference) is original  # in the process that defined it: itself


@pytest.mark.filterwarnings("ignore::crew_durable._output_models.LocalOutputModelWarning")
def test_a_local_output_model_works_inline_and_replays_as_itself(
    launched: Database, fixed_ports: None
) -> None:
    class Total(BaseModel):
        total: int
        label: str

    clerk = inspector.crew.crew.agents[1]
    task = Task(
        description="Sum up the verdict.", expected_output="A tally", agent=clerk, output_pydantic=Total
    )
    workflow_id = f"total-{uuid.uuid4()}"
    with serve(inspector.brain, port=FAKE_PORT) as server:
        with SetWorkflowID(workflow_id):
            first = task.execute_sync(agent=clerk)
        asked = len(server.requests)
        with SetWorkflowID(workflow_id):
            again = task.execute_sync(agent=clerk)

    assert asked == 1 and len(server.requests) == 1  # the replay asked nothing
    assert isinstance(first.pydantic, Total) and isinstance(again.pydantic, Total)
    assert again.pydantic == first.pydantic == Total(total=7, label="sum ✓")


@pytest.mark.filterwarnings("ignore::crew_durable._output_models.LocalOutputModelWarning")
def test_a_crew_with_local_models_killed_mid_task_recovers_with_equivalent_models(
    system_database: Database, tmp_path: Path, fixed_ports: None
) -> None:
    processes = Harness(system_database, tmp_path, env={harness.LIVE: "1"})
    with serve(inspector.brain, port=FAKE_PORT) as server:
        uninterrupted = processes.run("run", "inspector", "kickoff", f"inspector-{uuid.uuid4()}")
        requests_uninterrupted = len(server.requests)
        run_id = f"inspector-{uuid.uuid4()}"
        processes.run_until_killed("inspector", "kickoff", run_id, pause_in_tool="look_up")
        recovered = processes.run("recover", "inspector", "kickoff", run_id)
        requests_in_all = len(server.requests)

    assert recovered["result"] == uninterrupted["result"]
    assert recovered["result"]["verdict_type"] == "build.<locals>.Verdict"
    assert recovered["result"]["verdict"]["reasons"][1] == "emoji 🚀 kept"
    assert requests_in_all == 2 * requests_uninterrupted  # no completion asked twice
    assert ledger.count(processes.ledger, "look_up") == 2  # once per run: the killed call ran again once

    # A process that never defined the models reads the result with models rebuilt from the records.
    script = (
        "import json, sys\n"
        "from crew_durable import CrewClient\n"
        "output = CrewClient(sys.argv[1]).result(sys.argv[2])\n"
        "verdict = output.tasks_output[0].pydantic\n"
        "app = 'tests.support.apps.inspector' in sys.modules\n"
        "print(json.dumps({'type': type(verdict).__qualname__, 'module': type(verdict).__module__,\n"
        "                  'verdict': verdict.model_dump(), 'app': app}))\n"
    )
    report = last_json(run_python(script, system_database.url, run_id))
    assert report["type"] == "build.<locals>.Verdict"
    assert report["module"] == "tests.support.apps.inspector"
    assert report["verdict"] == recovered["result"]["verdict"]
    assert report["app"] is False  # the app that defines the models was never imported
