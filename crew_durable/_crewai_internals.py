"""The places crew_durable reaches below crewAI's public API, kept together.

``tests/test_crewai_internals.py`` pins each assumption made here, so a
crewAI release that renames or changes one fails one named test.
"""

from __future__ import annotations

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
