"""``crew-durable worker``: a process that runs the crews of a module from DBOS queues.

A worker imports the user's module (where agents, crews and flows are
defined, at module level), configures DBOS with an executor id of its own,
launches it, declares its queues and dequeues from them until SIGTERM.

Executor ids decide recovery: on launch, DBOS resumes the pending runs of
its own executor id (and application version). So every live worker needs
an id no other live worker has, and a worker that dies should come back
under the id it had. The default id is ``<host>-<n>``, with ``n`` the
lowest slot no live worker on this host holds: a worker restarted after a
crash takes the freed slot and resumes the runs it had in progress, while
the runs still queued go to whichever worker dequeues them first. A worker
holds its id with a lock for its lifetime (a Postgres advisory lock, or a
file lock next to a SQLite database), and refuses an ``--executor-id``
that a live worker holds.
"""

from __future__ import annotations

import fcntl
import importlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import psycopg
from dbos import DBOS

from crew_durable._config import dbos_config
from crew_durable._errors import CrewDurableError

logger = logging.getLogger("crew_durable")

MAX_SLOTS = 1000


@dataclass(frozen=True)
class WorkerSettings:
    target: str
    """``module`` or ``module:attribute`` (a DBOS config, or a callable returning one)."""
    queues: list[str]
    concurrency: int | None = None
    """Runs of each queue this worker runs at once (DBOS ``worker_concurrency``)."""
    global_concurrency: int | None = None
    """Runs of each queue all workers run at once."""
    rate: tuple[int, float] | None = None
    """At most ``rate[0]`` runs of each queue start in any ``rate[1]`` seconds (an LLM provider's limit)."""
    executor_id: str | None = None
    database_url: str | None = None
    application_version: str | None = None
    grace_seconds: int = 30
    """On SIGTERM, how long the runs in progress get to finish before the process exits."""


def load_config(target: str, database_url: str | None) -> dict[str, Any]:
    """Import the user's module; the DBOS config it names, or crew_durable's default for it."""
    module_name, _, attribute = target.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise CrewDurableError(
            f"Cannot import {module_name!r} ({error}). Run the worker from the directory that "
            "contains your package, or add it to PYTHONPATH."
        ) from None
    if not attribute:
        name = module_name.replace(".", "-").replace("_", "-")
        return dict(dbos_config(name, database_url))
    config = getattr(module, attribute, None)
    if callable(config):
        config = config()
    if not isinstance(config, dict) or "name" not in config:
        raise CrewDurableError(
            f"{target} should be a DBOS config (a dict with 'name' and 'system_database_url'), or a "
            f"function returning one; it is {type(config).__name__}. Use crew_durable.dbos_config(...)."
        )
    config = dict(config)
    if database_url:
        config["system_database_url"] = database_url
    return config


class ExecutorLock:
    """A worker's hold on its executor id, for as long as the process lives."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._connection: psycopg.Connection[Any] | None = None
        self._file: TextIO | None = None

    def take(self, executor_id: str) -> bool:
        """Hold ``executor_id`` if no live worker does."""
        if self._url.startswith("sqlite"):
            path = Path(self._url.removeprefix("sqlite:///").split("?", 1)[0])
            lock = path.with_name(f"{path.name}.executor-{_safe_name(executor_id)}.lock").open("w")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock.close()
                return False
            self._file = lock
            return True
        connection = psycopg.connect(_psycopg_url(self._url), autocommit=True)
        held = connection.execute(
            "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (f"crew_durable.executor:{executor_id}",)
        ).fetchone()
        if not held or not held[0]:
            connection.close()
            return False
        self._connection = connection
        return True

    def release(self) -> None:
        if self._connection is not None:
            self._connection.close()
        if self._file is not None:
            self._file.close()


def choose_executor_id(lock: ExecutorLock, wanted: str | None) -> str:
    """``wanted`` if free, or the first free default id on this host."""
    if wanted is not None:
        if not lock.take(wanted):
            raise CrewDurableError(
                f"Executor id {wanted!r} is held by a live worker. Each worker needs its own: DBOS "
                "recovers a worker's runs under its id, and two workers on one id would resume each "
                "other's live runs. Give this worker another --executor-id, or leave it out."
            )
        return wanted
    host = socket.gethostname()
    for slot in range(MAX_SLOTS):
        candidate = f"{host}-{slot}"
        if lock.take(candidate):
            return candidate
    raise CrewDurableError(f"All {MAX_SLOTS} default executor ids of host {host!r} are held.")


def run_worker(settings: WorkerSettings, ready: threading.Event | None = None) -> None:
    """Launch DBOS as a worker of ``settings.queues`` and serve until SIGTERM or SIGINT."""
    config = load_config(settings.target, settings.database_url)
    if settings.application_version:
        config["application_version"] = settings.application_version
    url = str(config["system_database_url"])
    lock = ExecutorLock(url)
    executor_id = choose_executor_id(lock, settings.executor_id or config.get("executor_id"))
    config["executor_id"] = executor_id
    stop = threading.Event()
    try:
        with _stopping_on_signals(stop):
            DBOS(config=config)  # type: ignore[arg-type]
            DBOS.listen_queues(settings.queues)
            DBOS.launch()  # resumes this executor id's unfinished runs
            limiter: Any = {"limit": settings.rate[0], "period": settings.rate[1]} if settings.rate else None
            for queue in settings.queues:
                DBOS.register_queue(
                    queue,
                    worker_concurrency=settings.concurrency,
                    global_concurrency=settings.global_concurrency,
                    limiter=limiter,
                    polling_interval_sec=0.2,
                    on_conflict="always_update",
                )
            print(
                f"crew-durable worker {executor_id} (version {DBOS.application_version}) serving "
                f"queues {', '.join(settings.queues)}",
                flush=True,
            )
            if ready is not None:
                ready.set()
            stop.wait()
            print(f"crew-durable worker {executor_id}: stopping", flush=True)
            DBOS.destroy(workflow_completion_timeout_sec=settings.grace_seconds)
    finally:
        lock.release()


@contextmanager
def _stopping_on_signals(stop: threading.Event) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _psycopg_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"postgresql://{rest}" if sep and "+" in scheme else url
