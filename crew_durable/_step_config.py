"""How a checkpointed LLM completion or tool call retries before it fails."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dbos import StepOptions


@dataclass(frozen=True)
class StepConfig:
    """Retry settings of one kind of DBOS step (an LLM's completions, a tool's calls).

    Retries happen inside the step: only the final outcome is recorded, so a
    recovered run never repeats an attempt that already succeeded.
    ``should_retry`` receives the exception an attempt raised and returns
    whether it is worth another attempt (a timeout: yes; a rejected payment:
    no). Without it, an LLM's completions are retried for transient errors
    only (rate limits, 5xx, timeouts, lost connections: not a 401 or a bad
    request), and a tool step with retries must say which errors are
    transient.
    """

    retries_allowed: bool = False
    interval_seconds: float = 1.0
    max_attempts: int = 3
    backoff_rate: float = 2.0
    should_retry: Callable[[BaseException], bool] | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"StepConfig.max_attempts must be at least 1, got {self.max_attempts}.")
        if self.interval_seconds < 0:
            raise ValueError(
                f"StepConfig.interval_seconds must not be negative, got {self.interval_seconds}."
            )
        if self.backoff_rate < 1:
            raise ValueError(f"StepConfig.backoff_rate must be at least 1, got {self.backoff_rate}.")

    def options(self, name: str) -> StepOptions:
        """The DBOS step options for a step called ``name``."""
        return {
            "name": name,
            "retries_allowed": self.retries_allowed,
            "interval_seconds": self.interval_seconds,
            "max_attempts": self.max_attempts,
            "backoff_rate": self.backoff_rate,
            "should_retry": self.should_retry,
        }
