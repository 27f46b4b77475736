"""DBOSLLM: a crewAI LLM whose every completion is a DBOS step.

It is a ``BaseLLM`` subclass rather than a proxy, because crewAI keys
per-call state on the LLM object itself: the executor's stop words and the
streaming switch are overrides keyed by ``id(llm)``, and OpenAI applies stop
words client-side. Inside the step those overrides are re-applied to the
wrapped LLM, so the provider sees exactly what it would have seen unwrapped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, Literal

from crewai.hooks.dispatch import HookAborted
from crewai.llms.base_llm import (
    BaseLLM,
    LLMCallBlockedError,
    call_stop_override,
    call_stream_override,
)
from crewai.llms.providers.openai.completion import OpenAICompletion
from dbos import DBOS
from pydantic import BaseModel, Field

from crew_durable import _stream, _usage
from crew_durable._crewai_internals import RATE_LIMIT_MARKER, set_token_usage, token_usage
from crew_durable._errors import NotRecoverableError, RecordedError, is_transient, unwrap_step_error
from crew_durable._serialization import dumps, value_from_json, value_to_json
from crew_durable._step_config import StepConfig

Role = Literal["llm", "function_calling_llm", "planning_llm"]
"""What an LLM does for its agent; only the main LLM's usage counts toward a crew's, as in crewAI."""

# crewAI's control-flow exceptions: a hook's decision is replayed as itself.
_DECISIONS: dict[str, Callable[[str], Exception]] = {
    "HookAborted": HookAborted,
    "LLMCallBlockedError": LLMCallBlockedError,
}


def _mark_retry_wrapped(method: Callable[..., Any]) -> Callable[..., Any]:
    """Keep crewAI from wrapping this method in its rate-limit retry.

    crewAI retries every ``BaseLLM`` subclass's ``call`` on rate limits. Done
    around the step, each retry would be a new step; the wrapped provider's
    own ``call`` already retries, inside the step, where retries belong.
    """
    setattr(method, RATE_LIMIT_MARKER, True)
    return method


def in_workflow() -> bool:
    """Whether code runs in a DBOS workflow, outside any step."""
    return DBOS.workflow_id is not None and DBOS.step_id is None


class DBOSLLM(BaseLLM):
    """Wraps a crewAI LLM so that each completion is checkpointed.

    Outside a DBOS workflow it calls the wrapped LLM directly. Inside one,
    ``call`` and ``acall`` (streaming or not) run as a step named
    ``step_name`` that records the completion and its token usage as JSON; a
    recovered run gets the recorded completion back without a request.
    """

    llm_type: str = "dbos"
    wrapped: BaseLLM = Field(exclude=True)
    step_name: str = Field(exclude=True)
    step_config: StepConfig = Field(default_factory=StepConfig, exclude=True)
    role: Role = Field(default="llm", exclude=True)

    @classmethod
    def around(
        cls, llm: BaseLLM, step_name: str, config: StepConfig | None = None, role: Role = "llm"
    ) -> DBOSLLM:
        """A wrapper of ``llm`` (or of what ``llm`` wraps) with fresh usage counters.

        Each completion is a step named ``step_name``; use it for LLMs called
        directly in workflow code, such as a durable flow's methods.
        """
        inner = llm.wrapped if isinstance(llm, DBOSLLM) else llm
        _usage.tap(inner)
        return cls(
            **_settings_of(inner),
            wrapped=inner,
            step_name=step_name,
            step_config=config or StepConfig(),
            role=role,
        )

    def fresh(self) -> DBOSLLM:
        """A wrapper like this one whose usage counters start at zero."""
        return type(self).around(self, self.step_name, self.step_config, self.role)

    # -- completions --------------------------------------------------------

    @_mark_retry_wrapped
    def call(
        self,
        messages: Any,
        tools: list[dict[str, Any]] | None = None,
        callbacks: list[Any] | None = None,
        available_functions: dict[str, Any] | None = None,
        from_task: Any | None = None,
        from_agent: Any | None = None,
        response_model: type[BaseModel] | None = None,
    ) -> Any:
        kwargs = {
            "tools": tools,
            "callbacks": callbacks,
            "available_functions": available_functions,
            "from_task": from_task,
            "from_agent": from_agent,
            "response_model": response_model,
        }
        if not in_workflow():
            return self._adopt(self._complete(messages, kwargs))
        _stream.flush()  # what happened before this completion (a tool's end) is in the stream first
        completion = _stream.next_completion_id()
        try:
            record = DBOS.run_step(self._options(), self._complete, messages, kwargs)
        except Exception as error:
            raise unwrap_step_error(error) from None
        return self._adopt(record, completion)

    @_mark_retry_wrapped
    async def acall(
        self,
        messages: Any,
        tools: list[dict[str, Any]] | None = None,
        callbacks: list[Any] | None = None,
        available_functions: dict[str, Any] | None = None,
        from_task: Any | None = None,
        from_agent: Any | None = None,
        response_model: type[BaseModel] | None = None,
    ) -> Any:
        kwargs = {
            "tools": tools,
            "callbacks": callbacks,
            "available_functions": available_functions,
            "from_task": from_task,
            "from_agent": from_agent,
            "response_model": response_model,
        }
        if not in_workflow():
            return self._adopt(await self._acomplete(messages, kwargs))
        _stream.flush()
        # The step ids (the completion's, and its event's) are taken before the
        # first await, so completions started together (asyncio.gather) are
        # numbered in the order they were started.
        completion = _stream.next_completion_id()
        step = DBOS.run_step_async(self._options(), self._acomplete, messages, kwargs)
        slot = _stream.reserve()
        try:
            record = await step
        except Exception as error:
            raise unwrap_step_error(error) from None
        return self._adopt(record, completion, slot)

    def _options(self) -> Any:
        """DBOS step options; without a ``should_retry`` of yours, only transient errors are retried."""
        options = self.step_config.options(self.step_name)
        user_should_retry = options["should_retry"] or is_transient

        def should_retry(error: BaseException) -> bool:
            if isinstance(error, NotRecoverableError):
                return False  # the same completion would fail to record again
            live = getattr(error, "original", None) or error
            return bool(user_should_retry(live))

        options["should_retry"] = should_retry
        return options

    def _complete(self, messages: Any, kwargs: dict[str, Any]) -> str:
        """The step body: one completion of the wrapped LLM, as a JSON record."""
        with (
            self._provider_view(),
            _usage.measuring_completion() as usage,
            _stream.streaming_tokens(_stream.current()) as tokens,
        ):
            try:
                result = self.wrapped.call(messages, **kwargs)
            except (HookAborted, LLMCallBlockedError) as decision:
                return self._record_decision(decision)
            except Exception as error:
                raise RecordedError.of(error) from None
        return self._record(result, usage, tokens)

    async def _acomplete(self, messages: Any, kwargs: dict[str, Any]) -> str:
        with (
            self._provider_view(),
            _usage.measuring_completion() as usage,
            _stream.streaming_tokens(_stream.current()) as tokens,
        ):
            try:
                result = await self.wrapped.acall(messages, **kwargs)
            except (HookAborted, LLMCallBlockedError) as decision:
                return self._record_decision(decision)
            except Exception as error:
                raise RecordedError.of(error) from None
        return self._record(result, usage, tokens)

    @contextmanager
    def _provider_view(self) -> Iterator[None]:
        """Re-apply this call's stop words and streaming switch to the wrapped LLM."""
        with ExitStack() as overrides:
            overrides.enter_context(call_stop_override(self.wrapped, self.stop_sequences))
            stream = self._effective_stream()
            if stream is not None:
                overrides.enter_context(call_stream_override(self.wrapped, stream))
            yield

    def _record(self, result: Any, usage: dict[str, int], tokens: _stream.TokenWriter | None) -> str:
        record: dict[str, Any] = {"result": value_to_json(result), "usage": usage}
        if tokens is not None and tokens.written:
            record["attempt"] = tokens.attempt  # whose streamed tokens are the kept ones
        return dumps(record, f"The LLM step {self.step_name!r}")

    def _record_decision(self, decision: Exception) -> str:
        record = {"decision": {"type": type(decision).__name__, "message": str(decision)}}
        return dumps(record, f"The LLM step {self.step_name!r}")

    def _adopt(self, text: str, completion: str | None = None, slot: _stream.Slot | None = None) -> Any:
        """Turn a recorded completion back into what the wrapped LLM returned (and announce it)."""
        record = json.loads(text)
        if "decision" in record:
            decision = record["decision"]
            raise _DECISIONS[decision["type"]](decision["message"])
        usage = record["usage"]
        _usage.add_to_counters(self, usage)
        _usage.report_completion(self.role, usage)
        result = value_from_json(record["result"])
        if completion is not None:
            _announce(record, result, completion, slot)
        return result

    # -- token counting -----------------------------------------------------

    def get_input_tokens_count(
        self,
        messages: Any,
        tools: list[dict[str, Any]] | None = None,
        response_model: type[BaseModel] | None = None,
    ) -> int:
        """Count input tokens; a count that asks the provider is a step.

        crewAI decides from this count whether to compact the conversation,
        so a recovered run must see the count the original run saw. Local
        estimates are pure functions of the messages and need no step.
        """
        if _counts_locally(self.wrapped) or not in_workflow():
            return self.wrapped.get_input_tokens_count(messages, tools, response_model)
        options = StepConfig().options(f"{self.step_name}.count_tokens")
        return int(
            DBOS.run_step(options, self.wrapped.get_input_tokens_count, messages, tools, response_model)
        )

    # -- capabilities, answered by the wrapped LLM --------------------------

    def supports_function_calling(self) -> bool:
        supports = getattr(self.wrapped, "supports_function_calling", None)
        return bool(supports()) if callable(supports) else False

    def supports_stop_words(self) -> bool:
        with call_stop_override(self.wrapped, self.stop_sequences):
            return self.wrapped.supports_stop_words()

    def get_context_window_size(self) -> int:
        return self.wrapped.get_context_window_size()

    def supports_multimodal(self) -> bool:
        return self.wrapped.supports_multimodal()

    def _multimodal_formatter_name(self) -> str:
        return self.wrapped._multimodal_formatter_name()

    def format_text_content(self, text: str) -> dict[str, Any]:
        return self.wrapped.format_text_content(text)

    def get_file_uploader(self) -> Any:
        return self.wrapped.get_file_uploader()

    def _effective_max_tokens(self) -> int | float | None:
        return self.wrapped._effective_max_tokens()

    def to_config_dict(self) -> dict[str, Any]:
        return self.wrapped.to_config_dict()

    def __getattr__(self, name: str) -> Any:
        """Provider settings (``api``, ``response_format``...) read through to the wrapped LLM.

        Only data is forwarded: a provider method called through here would
        bypass the steps, so an unknown method fails loudly instead.
        """
        try:
            return super().__getattr__(name)  # type: ignore[misc]
        except AttributeError:
            wrapped = self.__dict__.get("wrapped")
            if wrapped is None or name.startswith("__"):
                raise
            value = getattr(wrapped, name)
            if callable(value):
                raise
            return value


def _announce(record: dict[str, Any], result: Any, completion: str, slot: _stream.Slot | None) -> None:
    """Write the finished completion to the run's stream: its text or tool calls, and its usage."""
    data: dict[str, Any] = {"completion": completion, "attempt": record.get("attempt")}
    data["usage"] = record.get("usage", {})
    text: str | None
    if isinstance(result, str):
        text = result
    elif isinstance(result, BaseModel):
        text = result.model_dump_json()
    else:
        text = None
        if record["result"]["kind"] == "tool_calls":
            data["tool_calls"] = [_tool_call_summary(call) for call in record["result"]["value"]]
    _stream.emit("llm_finished", text=text, data=data, slot=slot)


def _tool_call_summary(call: dict[str, Any]) -> dict[str, Any]:
    function: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else call
    return {"name": function.get("name"), "arguments": function.get("arguments", function.get("input"))}


def _settings_of(llm: BaseLLM) -> dict[str, Any]:
    """The wrapped LLM's own settings (model, provider, base URL, key...), for the wrapper to show.

    crewAI reads some of them off the agent's LLM to call the provider by
    other means (instructor's client for ``output_json`` conversions takes
    ``base_url`` and ``api_key``); they must be the wrapped LLM's, not defaults.
    The wrapper keeps them in memory only: no LLM is recorded.
    """
    settings = {name: getattr(llm, name) for name in BaseLLM.model_fields if name != "llm_type"}
    return {**settings, "stop": list(llm.stop)}


def fresh(llm: Any) -> Any:
    """A wrapper like ``llm`` with zeroed counters; anything else unchanged."""
    return llm.fresh() if isinstance(llm, DBOSLLM) else llm


def reset(current: Any, wanted: Any) -> Any:
    """``current`` with zeroed counters if it wraps what ``wanted`` wraps, else a fresh ``wanted``."""
    if (
        isinstance(current, DBOSLLM)
        and isinstance(wanted, DBOSLLM)
        and current.wrapped is wanted.wrapped
        and (current.step_name, current.step_config, current.role)
        == (wanted.step_name, wanted.step_config, wanted.role)
    ):
        set_token_usage(current, dict.fromkeys(token_usage(current), 0))
        return current
    return fresh(wanted)


def _counts_locally(llm: BaseLLM) -> bool:
    """Whether ``llm`` estimates token counts without a network request.

    crewAI's base estimate is local, and so is the OpenAI provider's when it
    talks to an OpenAI-compatible server (there is no count endpoint to ask).
    Any other count, a custom LLM's included, may ask the provider.
    """
    count = type(llm).get_input_tokens_count
    if count is BaseLLM.get_input_tokens_count:
        return True
    if isinstance(llm, OpenAICompletion) and count is OpenAICompletion.get_input_tokens_count:
        return bool(llm._on_compatible_server())
    return False
