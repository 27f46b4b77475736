"""A crew's output as JSON, and back: how a kickoff's result is recorded and read.

The ``crew_durable.crew_kickoff`` workflow returns its ``CrewOutput`` in
this form (DBOS stores it as portable JSON); ``DBOSCrew`` and
``CrewClient.result`` turn it back into crewAI's own ``CrewOutput``.
"""

from __future__ import annotations

from typing import Any

from crewai.crews.crew_output import CrewOutput
from crewai.tasks.task_output import TaskOutput

from crew_durable import _usage
from crew_durable._serialization import value_from_json, value_to_json


def crew_output_to_json(output: CrewOutput) -> dict[str, Any]:
    return {
        "raw": output.raw,
        "pydantic": value_to_json(output.pydantic) if output.pydantic is not None else None,
        "json_dict": output.json_dict,
        "tasks_output": [_task_output_to_json(task_output) for task_output in output.tasks_output],
        "token_usage": output.token_usage.model_dump(),
    }


def crew_output_from_json(data: dict[str, Any]) -> CrewOutput:
    return CrewOutput(
        raw=data["raw"],
        pydantic=value_from_json(data["pydantic"]) if data["pydantic"] is not None else None,
        json_dict=data["json_dict"],
        tasks_output=[_task_output_from_json(each) for each in data["tasks_output"]],
        token_usage=_usage.as_metrics(data["token_usage"]),
    )


def _task_output_to_json(task_output: Any) -> dict[str, Any]:
    data: dict[str, Any] = task_output.model_dump(mode="json", exclude={"pydantic"})
    data["pydantic"] = value_to_json(task_output.pydantic) if task_output.pydantic is not None else None
    return data


def _task_output_from_json(data: dict[str, Any]) -> TaskOutput:
    pydantic = value_from_json(data["pydantic"]) if data["pydantic"] is not None else None
    return TaskOutput.model_validate({**data, "pydantic": pydantic})
