"""DBOSFlow: a crewAI Flow whose kickoff is one DBOS workflow and each method call a child workflow.

This is the facade users hold: it checks and registers the flow class,
starts kickoffs as ``crew_durable.flow_kickoff`` workflows (whose inside is
``_flow_run``) and turns their recorded JSON back into what the flow
returned (``_flow_codec``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from crewai.flow.flow import Flow
from dbos import DBOS, SetEnqueueOptions, SetWorkflowTimeout, WorkflowHandle, WorkflowStatus

from crew_durable import _registry
from crew_durable._errors import CrewDurableError, from_workflow_error
from crew_durable._flow_codec import decode
from crew_durable._flow_run import flow_kickoff, streaming_refused
from crew_durable._runs import Start, check_identity, identity, starting
from crew_durable._serialization import checked_inputs


class DBOSFlow:
    """A durable crewAI Flow: each kickoff is a DBOS workflow, each method call a child workflow.

    ``flow`` is the Flow *class*: every kickoff (and every recovery of one)
    runs on a new instance of it, as ``ContentFlow().kickoff()`` would. Like
    agents and crews, flows are defined at module level, before
    ``DBOS.launch()``, under a unique, stable ``flow_name``.

    What is recorded: each method call's result and the flow's state after
    it (so router decisions too), ``@human_feedback`` answers and the
    outcomes they collapse to, ``Flow.ask()`` answers. Listeners crewAI
    would run concurrently run one after another (see ``_flow_run``).
    """

    def __init__(self, *, flow_name: str, flow: type[Flow[Any]]) -> None:
        _registry.check_name("DBOSFlow", flow_name)
        if isinstance(flow, Flow):
            raise TypeError(
                f"DBOSFlow(flow=...) takes the Flow class, not an instance (got an instance of "
                f"{type(flow).__name__}): each kickoff, and each recovery of one, runs on a new "
                f"instance. Pass DBOSFlow(flow_name={flow_name!r}, flow={type(flow).__name__})."
            )
        if not (isinstance(flow, type) and issubclass(flow, Flow)):
            raise TypeError(f"DBOSFlow(flow=...) takes a crewAI Flow class, got {flow!r}.")
        streams = flow.model_fields.get("stream")
        if streams is not None and streams.default is True:
            raise CrewDurableError(streaming_refused(flow_name))
        self.flow_name = flow_name
        self.flow_class = flow
        self.state: dict[str, Any] | None = None
        """The state (as JSON) the last kickoff in this process ended with."""
        _registry.register_flow(flow_name, self)

    def kickoff(self, inputs: dict[str, Any] | None = None) -> Any:
        """Run the flow as a workflow (named by an enclosing ``SetWorkflowID``); what the flow returns."""
        checked = self._checked(inputs)
        with self._starting() as start:
            return self._adopt(
                lambda: flow_kickoff(self.flow_name, checked, {"stream": start.stream}), checked, start
            )

    async def kickoff_async(self, inputs: dict[str, Any] | None = None) -> Any:
        """``kickoff`` from async code; the flow runs on a worker thread, with its own event loop."""
        return await asyncio.to_thread(self.kickoff, inputs)

    akickoff = kickoff_async

    def start(self, inputs: dict[str, Any] | None = None) -> FlowRunHandle:
        """Start the kickoff in the background; the handle's result is what the flow returns."""
        checked = self._checked(inputs)
        with self._starting() as start:
            handle = DBOS.start_workflow(flow_kickoff, self.flow_name, checked, {"stream": start.stream})
        return FlowRunHandle(handle, self)

    def enqueue(
        self,
        inputs: dict[str, Any] | None = None,
        *,
        queue_name: str,
        deduplication_id: str | None = None,
        priority: int | None = None,
        timeout_seconds: float | None = None,
    ) -> FlowRunHandle:
        """Put a kickoff on the DBOS queue ``queue_name`` (options as ``DBOSCrew.enqueue``)."""
        checked = self._checked(inputs)
        with (
            self._starting() as start,
            SetEnqueueOptions(deduplication_id=deduplication_id, priority=priority),
            SetWorkflowTimeout(timeout_seconds),
        ):
            handle = DBOS.enqueue_workflow(
                queue_name, flow_kickoff, self.flow_name, checked, {"stream": start.stream}
            )
        return FlowRunHandle(handle, self)

    def _starting(self) -> Any:
        return starting("flow", self.flow_name)

    def _checked(self, inputs: dict[str, Any] | None) -> dict[str, Any]:
        return checked_inputs(inputs, f"The kickoff inputs of flow {self.flow_name!r}")

    def _adopt(
        self, run: Callable[[], dict[str, Any]], inputs: dict[str, Any] | None, start: Start | None
    ) -> Any:
        try:
            recorded = run()
        except Exception as error:
            raise from_workflow_error(error) from None
        if inputs is not None and start is not None:
            check_identity(recorded, identity("flow", self.flow_name, inputs), start.workflow_id)
        self.state = recorded["state"]
        return decode(recorded["result"])

    def __repr__(self) -> str:
        return f"DBOSFlow(flow_name={self.flow_name!r}, flow={self.flow_class.__name__})"


class FlowRunHandle:
    """A ``WorkflowHandle`` of a flow kickoff whose result is what the flow returned."""

    def __init__(self, handle: WorkflowHandle[dict[str, Any]], flow: DBOSFlow) -> None:
        self._handle = handle
        self._flow = flow
        self.workflow_id = handle.get_workflow_id()

    def get_workflow_id(self) -> str:
        return self.workflow_id

    def get_result(self, *, polling_interval_sec: float = 1.0) -> Any:
        return self._flow._adopt(
            lambda: self._handle.get_result(polling_interval_sec=polling_interval_sec), None, None
        )

    def get_status(self) -> WorkflowStatus:
        return self._handle.get_status()
