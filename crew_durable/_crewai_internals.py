"""The places crew_durable reaches below crewAI's public API, kept together.

``tests/test_crewai_internals.py`` pins each assumption made here, so a
crewAI release that renames or changes one fails one named test.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from collections.abc import Callable
from typing import Any, cast

from crewai.core.providers import human_input
from crewai.core.providers.human_input import HumanInputProvider, SyncHumanInputProvider
from crewai.crews.crew_output import CrewOutput
from crewai.types.streaming import CrewStreamingOutput
from crewai.utilities.tool_result_artifacts import ToolResultArtifact, ToolResultArtifactStore


def contextual_human_input_provider() -> HumanInputProvider | None:
    """The provider a user set with crewAI's ``set_provider`` in this context, if any.

    crewAI's ``get_provider()`` installs its console provider into the
    context when none is set; reading the context variable itself tells a
    provider the user chose from that default without installing anything.
    """
    provider = human_input._provider.get()
    if provider is None or type(provider) is SyncHumanInputProvider:
        return None
    return provider


def set_streaming_result(streaming: CrewStreamingOutput, output: CrewOutput) -> None:
    """Complete a ``CrewStreamingOutput`` with its result, as crewAI's own streaming kickoff does."""
    streaming._set_result(output)


# -- flows (DBOSFlow) ---------------------------------------------------------
# A durable flow runs crewAI's own Flow engine; it takes over four seams of one
# flow instance (never of the class), each an attribute the instance shadows.

FLOW_SEAMS = ("_execute_method", "_run_human_feedback_step", "_collapse_to_outcome", "ask")
"""The Flow methods a durable flow instance replaces with its own (``replace_on_instance``)."""


def flow_methods(flow: Any) -> dict[str, Callable[..., Any]]:
    """The flow's methods by name, bound to the instance, as crewAI calls them."""
    return cast("dict[str, Callable[..., Any]]", flow._methods)


def replace_on_instance(flow: Any, name: str, replacement: Callable[..., Any]) -> Callable[..., Any]:
    """Shadow the flow method ``name`` on this one instance; the method it replaces."""
    if name not in FLOW_SEAMS:
        raise ValueError(f"{name!r} is not a pinned Flow seam")
    original = cast("Callable[..., Any]", getattr(flow, name))
    object.__setattr__(flow, name, replacement)
    return original


def restore_flow_state(flow: Any, state: dict[str, Any]) -> None:
    """Set the flow's whole state (its id included), as crewAI restores a persisted one."""
    if isinstance(flow._state, dict):
        flow._state.clear()
        flow._state.update(state)
    else:
        flow._state = type(flow._state).model_validate(state)


def resolve_feedback_provider(flow: Any, definition: Any) -> Any:
    """The review provider a ``@human_feedback`` method names (or crewAI's global one), if any."""
    return flow._resolve_feedback_provider(definition)


def stamp_flow_state_id(flow: Any, state_id: str) -> None:
    """Give the flow's state the id ``state_id``, as crewAI does for ``inputs={"id": ...}``."""
    flow._stamp_state_id(state_id)


# -- oversized tool results (crewAI's deferred tool-result files) --------------


class _StableArtifactStore(ToolResultArtifactStore):
    """crewAI's store of oversized tool results, each named after its content instead of at random."""

    def store(self, content: str, estimated_token_count: int) -> ToolResultArtifact:
        artifact = super().store(content, estimated_token_count)
        stable_id = "tool-result-" + hashlib.sha256(content.encode()).hexdigest()[:24]
        stable_directory = artifact.directory / stable_id
        if stable_directory.exists():  # the same result deferred twice in one run: one file
            shutil.rmtree(artifact.file_path.parent)
        else:
            artifact.file_path.parent.rename(stable_directory)
        self._artifact_ids.discard(artifact.artifact_id)
        self._artifact_ids.add(stable_id)
        file_path = stable_directory / artifact.file_path.name
        return dataclasses.replace(
            artifact,
            artifact_id=stable_id,
            relative_path=file_path.relative_to(artifact.directory),
            file_path=file_path,
        )


def use_stable_artifact_names(executor: Any) -> None:
    """Make the executor's next deferred tool results get names that follow from their contents."""
    if executor._tool_result_artifact_store is None:
        executor._tool_result_artifact_store = _StableArtifactStore()
