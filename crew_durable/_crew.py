"""DBOSCrew: a crewAI crew whose kickoff is one DBOS workflow.

This is the facade users hold: it builds the durable crew (``_crew_build``),
starts kickoffs as ``crew_durable.crew_kickoff`` workflows (whose inside is
``_crew_run``) and turns their recorded JSON back into crewAI's
``CrewOutput`` (``_outputs``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

from crewai import Crew
from crewai.crews.crew_output import CrewOutput
from crewai.types.streaming import CrewStreamingOutput, StreamChunk
from dbos import DBOS, SetEnqueueOptions, SetWorkflowTimeout, WorkflowHandle, WorkflowStatus

from crew_durable import _operations, _registry, _usage
from crew_durable._crew_build import durable_crew, durable_planning_llm
from crew_durable._crew_run import (
    crew_kickoff,
    crew_kickoff_async,
    crew_kickoff_for_each,
    crew_kickoff_for_each_async,
    hand_over_provider,
)
from crew_durable._crewai_internals import contextual_human_input_provider, set_streaming_result
from crew_durable._errors import CrewDurableError, from_workflow_error
from crew_durable._outputs import crew_output_from_json
from crew_durable._protocol import ATTR_NAME, ATTR_TASKS
from crew_durable._runs import check_identity, identity, starting
from crew_durable._serialization import checked_inputs
from crew_durable._stream import read_run_stream, stream_llms


class DBOSCrew:
    """A durable crewAI crew: each kickoff is a DBOS workflow, each task a child workflow.

    Plain ``Agent``s of the crew are wrapped as ``DBOSAgent``s named
    ``"<crew_name>.<role>"``; agents already wrapped keep their names. A
    hierarchical crew's manager is a ``DBOSAgent`` named
    ``"<crew_name>.manager"``. Like agents, crews are defined at module level,
    before ``DBOS.launch()``, under a unique, stable ``crew_name``.
    """

    def __init__(self, *, crew_name: str, orig_crew: Crew) -> None:
        _registry.check_name("DBOSCrew", crew_name)
        _registry.check_crew_name_free(crew_name)
        if not isinstance(orig_crew, Crew):
            raise TypeError(f"DBOSCrew(orig_crew=...) takes a crewai.Crew, got {type(orig_crew).__name__}.")
        self.crew_name = crew_name
        self.crew = durable_crew(crew_name, orig_crew)
        self.streams = bool(orig_crew.stream)
        """Whether kickoffs return crewAI's ``CrewStreamingOutput`` (``Crew(stream=True)``)."""
        if self.streams:  # the run itself does not stream; its LLMs do, into the run's stream
            self.crew.stream = False
            stream_llms(self.crew.agents)
        self.planning_llm = durable_planning_llm(crew_name, orig_crew) if orig_crew.planning else None
        self.usage_metrics = _usage.as_metrics({})
        _registry.register_crew(crew_name, self)

    def kickoff(self, inputs: dict[str, Any] | None = None) -> Any:
        """Run the crew as a workflow (named by an enclosing ``SetWorkflowID``).

        Returns a ``CrewOutput``; for a crew built with ``stream=True``,
        crewAI's ``CrewStreamingOutput``, whose chunks are the run's streamed
        tokens (read back from the run's durable stream) and whose
        ``.result`` is the ``CrewOutput``.
        """
        checked = self._checked(inputs)
        if self.streams:
            return self._streaming(checked)
        with self._starting() as start:
            output = self._adopt(
                lambda: crew_kickoff(self.crew_name, checked, {"stream": start.stream}),
                identity("crew", self.crew_name, checked),
                start.workflow_id,
            )
            return output

    async def kickoff_async(self, inputs: dict[str, Any] | None = None) -> Any:
        """``kickoff`` from async code; like crewAI's, it runs the crew in a worker thread."""
        return await asyncio.to_thread(self.kickoff, inputs)

    async def akickoff(self, inputs: dict[str, Any] | None = None) -> Any:
        """crewAI's native async kickoff (``Crew.akickoff``), as a workflow; no thread of its own."""
        checked = self._checked(inputs)
        if self.streams:
            return self._streaming(checked)
        with self._starting() as start:
            try:
                recorded = await crew_kickoff_async(self.crew_name, checked, {"stream": start.stream})
            except Exception as error:
                raise from_workflow_error(error) from None
        return self._adopt(lambda: recorded, identity("crew", self.crew_name, checked), start.workflow_id)

    def kickoff_for_each(self, inputs: list[dict[str, Any]]) -> list[CrewOutput]:
        """One workflow whose children are the kickoffs, one per input, in order."""
        checked = [self._checked(each) for each in inputs]
        with starting("crew", self.crew_name, **{ATTR_TASKS: len(self.crew.tasks) * len(checked)}):
            outputs = self._adopt_many(lambda: crew_kickoff_for_each(self.crew_name, checked))
        self.usage_metrics = _usage.as_metrics(_sum(o.token_usage.model_dump() for o in outputs))
        return outputs

    async def akickoff_for_each(self, inputs: list[dict[str, Any]]) -> list[CrewOutput]:
        """One workflow whose children are native async kickoffs, one per input, run concurrently."""
        checked = [self._checked(each) for each in inputs]
        with starting("crew", self.crew_name, **{ATTR_TASKS: len(self.crew.tasks) * len(checked)}):
            try:
                recorded = await crew_kickoff_for_each_async(self.crew_name, checked)
            except Exception as error:
                raise from_workflow_error(error) from None
        outputs = self._adopt_many(lambda: recorded)
        self.usage_metrics = _usage.as_metrics(_sum(o.token_usage.model_dump() for o in outputs))
        return outputs

    kickoff_for_each_async = akickoff_for_each

    def start(self, inputs: dict[str, Any] | None = None) -> CrewRunHandle:
        """Start the kickoff in the background; the handle's result is the ``CrewOutput``."""
        checked = self._checked(inputs)
        with self._starting() as start:
            hand_over_provider(start.workflow_id, contextual_human_input_provider())
            handle = DBOS.start_workflow(crew_kickoff, self.crew_name, checked, {"stream": start.stream})
        return CrewRunHandle(handle, self)

    def enqueue(
        self,
        inputs: dict[str, Any] | None = None,
        *,
        queue_name: str,
        deduplication_id: str | None = None,
        priority: int | None = None,
        timeout_seconds: float | None = None,
    ) -> CrewRunHandle:
        """Put a kickoff on the DBOS queue ``queue_name``; a worker of that queue runs it.

        The run id is an enclosing ``SetWorkflowID``'s (enqueueing an id that
        exists gives that run, not a second one) or a new one. The options
        are DBOS's: ``deduplication_id`` refuses a second run with the same
        id while one is queued or running, ``priority`` orders the queue
        (lower first), ``timeout_seconds`` cancels the run once it has run
        that long.
        """
        checked = self._checked(inputs)
        with (
            self._starting() as start,
            SetEnqueueOptions(deduplication_id=deduplication_id, priority=priority),
            SetWorkflowTimeout(timeout_seconds),
        ):
            hand_over_provider(start.workflow_id, contextual_human_input_provider())
            handle = DBOS.enqueue_workflow(
                queue_name, crew_kickoff, self.crew_name, checked, {"stream": start.stream}
            )
        return CrewRunHandle(handle, self)

    def cancel(self, run_id: str) -> None:
        """Cancel a run of this crew, its task runs included: each stops at its next step."""
        self._own_run(run_id)
        _operations.cancel(DBOS, run_id)

    def resume(self, run_id: str) -> CrewRunHandle:
        """Resume a cancelled run of this crew where it stopped; its cancelled tasks resume too."""
        self._own_run(run_id)
        _operations.resume(DBOS, run_id)
        return CrewRunHandle(DBOS.retrieve_workflow(run_id), self)

    def fork(self, run_id: str, *, task: int, step: int | None = None) -> CrewRunHandle:
        """A new run reusing what ``run_id`` recorded before task ``task`` (or before its step ``step``).

        Tasks before ``task`` return their recorded outputs, and inside task
        ``task`` the steps before ``step`` (step ids as ``crew-durable show``
        lists them) return their recorded results: none of it is paid again.
        """
        self._own_run(run_id)
        fork_id = _operations.fork(DBOS, run_id, task, step, application_version=DBOS.application_version)
        return CrewRunHandle(DBOS.retrieve_workflow(fork_id), self)

    def _own_run(self, run_id: str) -> None:
        status = _operations.run_status(DBOS, run_id)
        name = (status.attributes or {}).get(ATTR_NAME)
        if name != self.crew_name:
            raise CrewDurableError(f"Run {run_id!r} is a run of {name!r}, not of crew {self.crew_name!r}.")

    def _streaming(self, inputs: dict[str, Any]) -> CrewStreamingOutput:
        with self._starting() as start:
            handle = DBOS.start_workflow(crew_kickoff, self.crew_name, inputs, {"stream": start.stream})
        holder: list[CrewStreamingOutput] = []

        def chunks() -> Iterator[StreamChunk]:
            if start.stream is None:  # a run of its own: its stream holds its tokens
                for event in read_run_stream(start.run_id):
                    if event.kind == "token" and event.text:
                        yield StreamChunk(
                            content=event.text, task_name=event.task or "", agent_role=event.agent or ""
                        )
            output = self._adopt(lambda: handle.get_result(polling_interval_sec=0.05))
            set_streaming_result(holder[0], output)

        streaming = CrewStreamingOutput(sync_iterator=chunks())
        holder.append(streaming)
        return streaming

    def _starting(self) -> Any:
        return starting("crew", self.crew_name, **{ATTR_TASKS: len(self.crew.tasks)})

    def _checked(self, inputs: dict[str, Any] | None) -> dict[str, Any]:
        return checked_inputs(inputs, f"The kickoff inputs of crew {self.crew_name!r}")

    def _adopt(
        self,
        run: Callable[[], dict[str, Any]],
        expected: dict[str, str] | None = None,
        workflow_id: str | None = None,
    ) -> CrewOutput:
        try:
            recorded = run()
        except Exception as error:
            raise from_workflow_error(error) from None
        if expected is not None:
            check_identity(recorded, expected, workflow_id)
        output = crew_output_from_json(recorded)
        self.usage_metrics = output.token_usage
        return output

    def _adopt_many(self, run: Callable[[], list[dict[str, Any]]]) -> list[CrewOutput]:
        try:
            return [crew_output_from_json(each) for each in run()]
        except Exception as error:
            raise from_workflow_error(error) from None

    def __repr__(self) -> str:
        return f"DBOSCrew(crew_name={self.crew_name!r}, crew={self.crew!r})"


class CrewRunHandle:
    """A ``WorkflowHandle`` of a crew kickoff whose result is a ``CrewOutput``."""

    def __init__(self, handle: WorkflowHandle[dict[str, Any]], crew: DBOSCrew) -> None:
        self._handle = handle
        self._crew = crew
        self.workflow_id = handle.get_workflow_id()
        self.shard_key = handle.shard_key

    def get_workflow_id(self) -> str:
        return self.workflow_id

    def get_result(self, *, polling_interval_sec: float = 1.0) -> CrewOutput:
        return self._crew._adopt(lambda: self._handle.get_result(polling_interval_sec=polling_interval_sec))

    def get_status(self) -> WorkflowStatus:
        return self._handle.get_status()


def _sum(usages: Iterator[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for usage in usages:
        for key, value in usage.items():
            total[key] = total.get(key, 0) + value
    return total
