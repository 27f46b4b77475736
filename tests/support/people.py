"""The people of a test: they answer a run's open requests through CrewClient, as a web page would.

An app that asks people defines ``answer(client, request)``, which answers
one open request the way its scenario's person does. ``answering`` runs
that person in a thread of the calling process (a test, or the cassette
recorder) until the block ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from crew_durable import CrewClient, DatabaseNotReadyError, InputRequest

Person = Callable[[CrewClient, InputRequest], None]


@contextmanager
def answering(url: str, person: Person, run_id: str | None = None) -> Iterator[list[InputRequest]]:
    """Answer every request that opens while the block runs; yields the requests answered."""
    answered: list[InputRequest] = []
    stop = threading.Event()

    def loop() -> None:
        client = None
        while client is None and not stop.is_set():
            try:  # the application may not have created the database yet
                client = CrewClient(url)
            except DatabaseNotReadyError:
                stop.wait(0.05)
        if client is None:
            return
        with client:
            while not stop.is_set():
                for request in client.pending_input(run_id):
                    person(client, request)
                    answered.append(request)
                stop.wait(0.05)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield answered
    finally:
        stop.set()
        thread.join(timeout=10)


def wait_for_request(client: CrewClient, run_id: str, timeout: float = 60.0) -> InputRequest:
    """The run's open request, once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        requests = client.pending_input(run_id)
        if requests:
            return requests[0]
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} opened no request within {timeout} s")
