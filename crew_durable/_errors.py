"""Errors crew_durable raises, and provider errors recorded as plain data."""

from __future__ import annotations

from typing import Any

from dbos import PortableWorkflowError

from crew_durable._dbos_internals import DBOSMaxStepRetriesExceeded


class CrewDurableError(Exception):
    """Base class of crew_durable's own errors."""


class InvalidNameError(CrewDurableError, ValueError):
    """An agent or crew name is missing, empty or already taken."""


class NotDefinedError(CrewDurableError, LookupError):
    """A recovered run names an agent, crew or tool this process does not define."""


class NotRecoverableError(CrewDurableError, TypeError):
    """Something a run needs cannot be recorded, so the run could not be recovered."""


class ReplayMismatchError(CrewDurableError):
    """A recorded run under the id being started is a run of another crew, agent or input."""


class RecordFormatError(CrewDurableError, ValueError):
    """A record was written by a newer crew_durable than the one reading it."""


class UnknownRunError(CrewDurableError, LookupError):
    """No run, or no crew_durable run, has the given id in this system database."""


class AnswerRefusedError(CrewDurableError):
    """An answer was refused: the request is unknown, already answered, or no longer waiting."""


class DatabaseNotReadyError(CrewDurableError):
    """The system database is missing, unreachable, or no DBOS application has created its tables."""


class RecordedError(Exception):
    """A provider or step error kept as plain data: class name, status code and message.

    Provider exceptions do not survive a round trip through the database as
    themselves: openai's ``APIStatusError`` pickles but does not unpickle, and
    pickling it would store the request with its ``Authorization`` header.
    crewAI recognises context-length, rate-limit and tools-unsupported errors
    by message text, status code and class name, so those three are what is
    kept. ``original`` is the live exception, available only in the process
    where it happened (for ``should_retry`` predicates); it is never stored.
    """

    def __init__(
        self,
        message: str,
        error_type: str,
        status_code: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.status_code = status_code
        self.code = code if code is not None else error_type.rpartition(".")[2]
        self.original: BaseException | None = None

    @classmethod
    def of(cls, error: BaseException) -> RecordedError:
        """Record ``error`` as plain data, keeping the live exception aside."""
        if isinstance(error, RecordedError):
            return error
        status = getattr(error, "status_code", None)
        code = getattr(error, "code", None)
        recorded = cls(
            str(error),
            f"{type(error).__module__}.{type(error).__qualname__}",
            status if isinstance(status, int) else None,
            code if isinstance(code, str) else None,
        )
        recorded.original = error
        return recorded

    @property
    def data(self) -> dict[str, Any]:
        """What DBOS stores beside the message when a workflow fails with this error."""
        return {"error_type": self.error_type, "status_code": self.status_code, "code": self.code}

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.error_type, self.status_code, self.code))

    def __repr__(self) -> str:
        return f"RecordedError({self.error_type}: {self})"


_TRANSIENT_NAMES = (
    "RateLimit",
    "Timeout",
    "Connection",
    "ServiceUnavailable",
    "InternalServer",
    "Overloaded",
)


def is_transient(error: BaseException) -> bool:
    """Whether a provider error is worth another attempt: rate limits, 5xx, timeouts, lost connections.

    An authentication error, a bad request or a context-length error fails
    the same way every time, and retrying it only costs time (and, for
    some providers, money).
    """
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        return status in (408, 409, 429) or status >= 500
    if isinstance(error, (TimeoutError, ConnectionError)):
        return True
    return any(any(word in cls.__name__ for word in _TRANSIENT_NAMES) for cls in type(error).__mro__)


def unwrap_step_error(error: BaseException) -> BaseException:
    """The error a caller should see for a failed step, live or replayed.

    DBOS reports an exhausted retry budget as ``DBOSMaxStepRetriesExceeded``,
    whose message drops the provider's text; crewAI needs that text, so the
    last attempt's error is surfaced instead.
    """
    if isinstance(error, DBOSMaxStepRetriesExceeded) and error.errors:
        return error.errors[-1]
    return error


def from_workflow_error(error: BaseException) -> BaseException:
    """Give a replayed workflow failure the shape the first run's caller saw.

    A failed workflow stored in portable JSON comes back from DBOS as a
    ``PortableWorkflowError``; our own errors are rebuilt as ``RecordedError``
    so that a second call with the same workflow id raises what the first did.
    """
    if isinstance(error, PortableWorkflowError):
        data = error.data if isinstance(error.data, dict) else {}
        status, code = data.get("status_code"), data.get("code")
        recorded = RecordedError(
            error.message,
            str(data.get("error_type") or error.name),
            status if isinstance(status, int) else None,
            code if isinstance(code, str) else None,
        )
        recorded.__cause__ = error
        return recorded
    return error
