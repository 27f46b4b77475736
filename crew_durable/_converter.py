"""crewAI's output converter, its instructor-based JSON conversion made a step.

When a task's answer does not parse as its ``output_json`` model, crewAI
asks the model to convert it. With an LLM that supports function calling it
does so through instructor, which calls the provider's client itself, not
the agent's LLM: the completion would escape the LLM steps, be paid again by
every recovered kickoff and could come back different. Inside a durable run
that conversion is one step recording the JSON text (or crewAI's conversion
error). ``to_pydantic`` needs nothing: it calls the agent's LLM, whose every
completion already is a step.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from crewai.utilities.converter import Converter, ConverterError
from dbos import DBOS

from crew_durable._llm import in_workflow
from crew_durable._serialization import dumps
from crew_durable._step_config import StepConfig


class DurableConverter(Converter):
    """A ``Converter`` whose instructor conversion to JSON is a DBOS step named ``step_name``."""

    step_name: str

    def to_json(self, current_attempt: int = 1) -> Any:
        if not self._through_instructor():
            return super().to_json(current_attempt)
        options = StepConfig().options(self.step_name)
        record = json.loads(DBOS.run_step(options, self._convert, current_attempt))
        return ConverterError(record["error"]) if "error" in record else record["json"]

    async def ato_json(self, current_attempt: int = 1) -> Any:
        if not self._through_instructor():
            return await super().ato_json(current_attempt)
        return await asyncio.to_thread(self.to_json, current_attempt)  # as crewAI runs instructor

    def _through_instructor(self) -> bool:
        return in_workflow() and bool(self.llm.supports_function_calling())

    def _convert(self, current_attempt: int) -> str:
        """The step body: crewAI's own conversion, with its retries, as a JSON record."""
        result = super().to_json(current_attempt)
        record = {"error": result.message} if isinstance(result, ConverterError) else {"json": result}
        return dumps(record, f"The output_json conversion {self.step_name!r}")
