"""The places crew_durable reaches below crewAI's public API, kept together.

``tests/test_crewai_internals.py`` pins each assumption made here, so a
crewAI release that renames or changes one fails one named test.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import shutil
from collections.abc import Callable
from typing import Any, cast

from crewai.core.providers import human_input
from crewai.core.providers.human_input import HumanInputProvider, SyncHumanInputProvider
from crewai.crews.crew_output import CrewOutput
from crewai.types.streaming import CrewStreamingOutput


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


@functools.cache
def _stable_artifact_store() -> type[Any]:
    """crewAI's store of oversized tool results, each named after its content instead of at random.

    Made on first use: importing this module needs no crewAI module beyond
    the ones every 1.15 release has, so ``tests/test_crewai_internals.py``
    can name what an older or newer crewAI lacks.
    """
    from crewai.utilities.tool_result_artifacts import ToolResultArtifact, ToolResultArtifactStore

    class StableArtifactStore(ToolResultArtifactStore):
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

    return StableArtifactStore


def use_stable_artifact_names(executor: Any) -> None:
    """Make the executor's next deferred tool results get names that follow from their contents."""
    if executor._tool_result_artifact_store is None:
        executor._tool_result_artifact_store = _stable_artifact_store()()


# -- crewAI's private attributes crew_durable reads or writes -----------------


def token_process(agent: Any) -> Any:
    """The agent's token counter, which crewAI's ``TokenCalcHandler`` feeds."""
    return agent._token_process


def rpm_controller(agent: Any) -> Any:
    """The agent's requests-per-minute limiter (a crew's, once the crew set it), or ``None``."""
    return agent._rpm_controller


def crew_memory(crew: Any) -> Any:
    """The memory object crewAI built from the crew's ``memory=`` setting, or ``None``."""
    return crew._memory


def reset_times_executed(agent: Any) -> None:
    """Reset the count of attempts crewAI's task retry loop compares with ``max_retry_limit``."""
    agent._times_executed = 0


def token_usage(llm: Any) -> dict[str, int]:
    """The LLM's cumulative token counters (a dict crewAI updates after each completion)."""
    return cast("dict[str, int]", llm._token_usage)


def set_token_usage(llm: Any, counters: dict[str, int]) -> None:
    """Replace the LLM's cumulative token counters."""
    llm._token_usage = counters


def event_handler_tables() -> tuple[dict[Any, Any], dict[Any, Any]]:
    """crewAI's event bus handlers, sync and async, each by event type."""
    from crewai.events.event_bus import crewai_event_bus

    return crewai_event_bus._sync_handlers, crewai_event_bus._async_handlers


# -- every private crewAI name crew_durable relies on, pinned -----------------


@dataclasses.dataclass(frozen=True)
class Seam:
    """One private crewAI name crew_durable overrides, calls or reads.

    ``owner`` is ``"module:Name"`` (a class, or a module-level object such
    as the event bus), or a module. ``kind`` says what the name must be there:

    - ``"method"``/``"async method"``: a function with exactly ``params``
      (after ``self``), which crew_durable overrides and calls with ``super()``
      or calls on crewAI's objects;
    - ``"private attr"``: a pydantic private attribute of the model class;
    - ``"attribute"``: an attribute of the module-level object or module;
    - ``"instance attribute"``: an attribute every instance made with no
      arguments has.
    """

    owner: str
    name: str
    kind: str
    params: tuple[str, ...] = ()
    used_by: str = ""

    @property
    def label(self) -> str:
        return f"{self.owner.rpartition(':')[2] or self.owner}.{self.name}"


_AGENT = "crewai.agent.core:Agent"
_EXECUTOR = "crewai.agents.agent_executor:AgentExecutor"
_FLOW = "crewai.flow.flow:Flow"
_REVIEW = "crewai.core.providers.human_input:SyncHumanInputProvider"

SEAMS: tuple[Seam, ...] = (
    # DBOSAgent (crew_durable/_agent.py) overrides these Agent methods.
    Seam(_AGENT, "_execute_with_timeout", "method", ("task_prompt", "task", "timeout"), "_agent"),
    Seam(_AGENT, "_aexecute_with_timeout", "async method", ("task_prompt", "task", "timeout"), "_agent"),
    Seam(_AGENT, "_retrieve_memory_context", "method", ("task", "task_prompt"), "_agent"),
    Seam(_AGENT, "_handle_execution_error", "method", ("e", "task", "context", "tools"), "_agent"),
    Seam(
        _AGENT, "_handle_execution_error_async", "async method", ("e", "task", "context", "tools"), "_agent"
    ),
    Seam(_AGENT, "_is_any_available_memory", "method", (), "_agent"),
    Seam(_AGENT, "_times_executed", "private attr", used_by="reset_times_executed"),
    Seam(_AGENT, "_token_process", "private attr", used_by="token_process"),
    Seam(_AGENT, "_rpm_controller", "private attr", used_by="rpm_controller"),
    Seam("crewai.crew:Crew", "_memory", "private attr", used_by="crew_memory"),
    # RunExecutor (crew_durable/_agent_run.py) overrides these AgentExecutor methods.
    Seam(_EXECUTOR, "_prepare_tool_result_for_context", "method", ("execution_result",), "_agent_run"),
    Seam(_EXECUTOR, "_should_parallelize_native_tool_calls", "method", ("tool_calls",), "_agent_run"),
    Seam(_EXECUTOR, "_execute_single_native_tool_call", "method", ("tool_call",), "_agent_run"),
    Seam(_EXECUTOR, "execute_todos_parallel", "async method", (), "_agent_run"),
    Seam(_EXECUTOR, "_build_context_for_todo", "method", ("todo",), "_agent_run"),
    Seam(_EXECUTOR, "_save_to_memory", "method", ("output",), "_agent_run"),
    Seam(_EXECUTOR, "_handle_human_feedback", "method", ("formatted_answer",), "_agent_run"),
    Seam(_EXECUTOR, "_ahandle_human_feedback", "async method", ("formatted_answer",), "_agent_run"),
    Seam(_EXECUTOR, "_tool_result_artifact_store", "private attr", used_by="use_stable_artifact_names"),
    # DurableFeedback (crew_durable/_human_input.py) reviews answers as crewAI's console provider does.
    Seam(_EXECUTOR, "_is_training_mode", "method", (), "_human_input"),
    Seam(_EXECUTOR, "_format_feedback_message", "method", ("feedback",), "_human_input"),
    Seam(_EXECUTOR, "_invoke_loop", "method", (), "_human_input"),
    Seam(_EXECUTOR, "_ainvoke_loop", "async method", (), "_human_input"),
    Seam(
        _REVIEW,
        "_handle_training_feedback",
        "method",
        ("initial_answer", "feedback", "context"),
        "_human_input",
    ),
    Seam(
        _REVIEW,
        "_handle_training_feedback_async",
        "async method",
        ("initial_answer", "feedback", "context"),
        "_human_input",
    ),
    Seam(_REVIEW, "_get_output_string", "method", ("answer",), "_human_input"),
    Seam(
        "crewai.core.providers.human_input",
        "_provider",
        "attribute",
        used_by="contextual_human_input_provider",
    ),
    # DBOSLLM (crew_durable/_llm.py) wraps a provider LLM and forwards these.
    Seam("crewai.llms.base_llm:BaseLLM", "_multimodal_formatter_name", "method", (), "_llm"),
    Seam("crewai.llms.base_llm:BaseLLM", "_effective_max_tokens", "method", (), "_llm"),
    Seam("crewai.llms.base_llm:BaseLLM", "_effective_stream", "method", (), "_llm"),
    Seam("crewai.llms.base_llm:BaseLLM", "_token_usage", "private attr", used_by="token_usage"),
    Seam(
        "crewai.llms.providers.openai.completion:OpenAICompletion",
        "_on_compatible_server",
        "method",
        (),
        "_llm",
    ),
    # DBOSTool (crew_durable/_tool_steps.py) implements crewAI's tool body.
    Seam("crewai.tools.base_tool:BaseTool", "_run", "method", ("args", "kwargs"), "_tool_steps"),
    # The event bus's handler tables (crew_durable/_executor.py refuses DBOS handlers).
    Seam(
        "crewai.events.event_bus:crewai_event_bus",
        "_sync_handlers",
        "attribute",
        used_by="event_handler_tables",
    ),
    Seam(
        "crewai.events.event_bus:crewai_event_bus",
        "_async_handlers",
        "attribute",
        used_by="event_handler_tables",
    ),
    # Streaming kickoffs and deferred tool results (this module).
    Seam(
        "crewai.types.streaming:CrewStreamingOutput",
        "_set_result",
        "method",
        ("result",),
        "set_streaming_result",
    ),
    Seam(
        "crewai.utilities.tool_result_artifacts:ToolResultArtifactStore",
        "store",
        "method",
        ("content", "estimated_token_count"),
        "use_stable_artifact_names",
    ),
    Seam(
        "crewai.utilities.tool_result_artifacts:ToolResultArtifactStore",
        "_artifact_ids",
        "instance attribute",
        used_by="use_stable_artifact_names",
    ),
    # Flows (crew_durable/_flow*.py, through the functions above).
    Seam(_FLOW, "_execute_method", "async method", ("method_name", "method", "args", "kwargs"), "FLOW_SEAMS"),
    Seam(
        _FLOW,
        "_run_human_feedback_step",
        "async method",
        ("method_name", "feedback_definition", "method_output"),
        "FLOW_SEAMS",
    ),
    Seam(_FLOW, "_collapse_to_outcome", "method", ("feedback", "outcomes", "llm"), "FLOW_SEAMS"),
    Seam(_FLOW, "ask", "method", ("message", "timeout", "metadata"), "FLOW_SEAMS"),
    Seam(_FLOW, "_methods", "private attr", used_by="flow_methods"),
    Seam(_FLOW, "_state", "private attr", used_by="restore_flow_state"),
    Seam(
        _FLOW, "_resolve_feedback_provider", "method", ("feedback_definition",), "resolve_feedback_provider"
    ),
    Seam(_FLOW, "_stamp_state_id", "method", ("state_id",), "stamp_flow_state_id"),
)
"""The private crewAI names crew_durable relies on; ``tests/test_crewai_internals.py`` checks each."""

RATE_LIMIT_MARKER = "_crewai_rate_limit_wrapped"
"""The attribute by which ``BaseLLM`` knows a ``call`` is already wrapped in its rate-limit retry."""
