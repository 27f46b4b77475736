"""Errors crew_durable raises, and provider errors recorded as plain data."""

from __future__ import annotations

import sys
import threading
import types
from typing import Any, cast

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

    The error a caller sees, live or replayed, keeps the original's type as
    far as it can be rebuilt without what it held (see :func:`rebuilt`): an
    ``openai.AuthenticationError`` comes back as an instance of both
    ``RecordedError`` and ``openai.AuthenticationError``, so ``except
    openai.AuthenticationError`` catches it in a recovered run too. Its
    ``response``, ``request`` and ``body`` are ``None``: they held the
    request and its headers, which are never recorded.
    """

    def __init__(
        self,
        message: str,
        error_type: str,
        status_code: int | None = None,
        code: str | None = None,
    ) -> None:
        # Not super(): in a rebuilt type the original class comes next, and its
        # __init__ wants what was not recorded (openai's wants the response).
        Exception.__init__(self, message)
        self.error_type = error_type
        self.status_code = status_code
        self.code = code if code is not None else error_type.rpartition(".")[2]
        self.original: BaseException | None = None
        if type(self) is not RecordedError:
            # What the original type's own __init__ would have set, made safe.
            for name in ("message", "body", "request", "response", "request_id", "param"):
                if not isinstance(getattr(type(self), name, None), property):
                    setattr(self, name, message if name == "message" else None)

    @classmethod
    def of(cls, error: BaseException) -> RecordedError:
        """Record ``error`` as plain data, keeping the live exception aside."""
        if isinstance(error, RecordedError):
            return error
        status = getattr(error, "status_code", None)
        code = getattr(error, "code", None)
        recorded = rebuilt(
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
        return (rebuilt, (str(self), self.error_type, self.status_code, self.code))

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __repr__(self) -> str:
        return f"RecordedError({self.error_type}: {self})"


_rebuilt_types: dict[str, type[RecordedError]] = {}
_rebuilt_lock = threading.Lock()


def rebuilt(
    message: str, error_type: str, status_code: int | None = None, code: str | None = None
) -> RecordedError:
    """A recorded error as the caller should see it: of its original type where that is safe.

    ``error_type`` is the original's ``module.QualName``. When that module is
    already imported (nothing is imported because a record names it) and
    names an ``Exception`` class, the error is an instance of a subclass of
    both ``RecordedError`` and that class, built without calling the
    class's ``__init__``. Otherwise (a class this process does not have, or
    one that cannot be a base) it is a ``RecordedError`` subclass bearing
    the original's name and module, so ``type(error).__name__`` and
    ``error.error_type`` still say what it was.
    """
    return recorded_type(error_type)(message, error_type, status_code, code)


def recorded_type(error_type: str) -> type[RecordedError]:
    """The ``RecordedError`` subclass that stands for ``error_type`` in this process."""
    with _rebuilt_lock:
        found = _rebuilt_types.get(error_type)
        if found is None:
            found = _rebuilt_types[error_type] = _make_type(error_type)
        return found


def _make_type(error_type: str) -> type[RecordedError]:
    module, qualname = _split(error_type)
    original = _loaded_class(module, qualname)
    namespace = {"__module__": module, "__qualname__": qualname}
    name = qualname.rpartition(".")[2] or "RecordedError"
    if original is not None:
        try:
            return cast(
                "type[RecordedError]",
                types.new_class(name, (RecordedError, original), exec_body=lambda ns: ns.update(namespace)),
            )
        except TypeError:
            pass  # a base it cannot share (layout, metaclass, final): keep the name only
    return cast("type[RecordedError]", type(name, (RecordedError,), dict(namespace)))


def _split(error_type: str) -> tuple[str, str]:
    """``module.Qual.Name`` as (module, qualname): the longest prefix that is a loaded module.

    A bare name (DBOS keeps only the class name of a workflow's error) is a built-in's.
    """
    if "." not in error_type:
        return "builtins", error_type
    parts = error_type.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:cut])
        if module in sys.modules:
            return module, ".".join(parts[cut:])
    module, _, qualname = error_type.rpartition(".")
    return module, qualname


def _loaded_class(module_name: str, qualname: str) -> type[Exception] | None:
    module = sys.modules.get(module_name)
    target: Any = module
    for part in qualname.split("."):
        if target is None or part.startswith("<"):
            return None
        target = getattr(target, part, None)
    if not (isinstance(target, type) and issubclass(target, Exception)):
        return None
    if issubclass(target, (RecordedError, CrewDurableError)):
        return None
    return target


def typed(error: BaseException) -> BaseException:
    """``error``, or for a ``RecordedError`` of the plain type, the same record with its type rebuilt."""
    if type(error) is not RecordedError:
        return error
    assert isinstance(error, RecordedError)
    typed_error = rebuilt(str(error), error.error_type, error.status_code, error.code)
    typed_error.original = error.original
    typed_error.__cause__ = error.__cause__
    return typed_error


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
        return typed(error.errors[-1])
    return typed(error)


def from_workflow_error(error: BaseException) -> BaseException:
    """Give a replayed workflow failure the shape the first run's caller saw.

    A failed workflow stored in portable JSON comes back from DBOS as a
    ``PortableWorkflowError``; our own errors are rebuilt as ``RecordedError``
    so that a second call with the same workflow id raises what the first did.
    """
    if isinstance(error, PortableWorkflowError):
        data = error.data if isinstance(error.data, dict) else {}
        status, code = data.get("status_code"), data.get("code")
        recorded = rebuilt(
            error.message,
            str(data.get("error_type") or error.name),
            status if isinstance(status, int) else None,
            code if isinstance(code, str) else None,
        )
        recorded.__cause__ = error
        return recorded
    return typed(error)
