"""DBOS configuration: SQLite by default, Postgres when the environment says so."""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any

from dbos import DBOSConfig

from crew_durable._dbos_internals import (
    after_launch,
    start_recovery_promptly,
    wait_for_existing_runs_promptly,
)
from crew_durable._protocol import ATTR_FORMAT, ATTR_RUN, FORMAT
from crew_durable._sqlite import with_write_ahead_log

logger = logging.getLogger("crew_durable")

APPLICATION_VERSION = f"crew-durable-r{FORMAT}"
"""The DBOS application version ``dbos_config`` gives, unless told otherwise (see ``dbos_config``)."""


def dbos_config(
    name: str,
    system_database_url: str | None = None,
    *,
    prompt_recovery: bool = True,
    sqlite_wal: bool = True,
    **settings: Any,
) -> DBOSConfig:
    """A DBOS config for application ``name``.

    The system database is ``system_database_url`` if given, else
    ``$DBOS_SYSTEM_DATABASE_URL`` (``postgresql://...`` in production), else
    an embedded SQLite file ``<name>.sqlite`` in the working directory.
    Other DBOS settings (``executor_id``...) pass through unchanged.

    ``application_version`` is ``crew-durable-r<format>`` unless you pass
    one. DBOS resumes a pending run only in processes of the version it was
    started under, and by default derives the version from the source of
    every registered workflow, so any deploy would strand the runs pending
    at the time. The workflows of crew_durable's runs are crew_durable's,
    and they read your agents and crews by name, so a deploy of new agent,
    crew or tool code resumes the pending runs; a new crew_durable release
    does too, unless it records runs in a new format (it then says so in
    its notes, and its processes leave the older runs to processes of the
    previous release). If you have ``@DBOS.workflow`` functions of your own
    whose changes must not resume older runs, pass your own version, or
    ``application_version=None`` for DBOS's source hash.

    With ``prompt_recovery`` (the default), this process also gets
    :func:`recover_promptly`; pass ``False`` to keep DBOS's own timings.

    With ``sqlite_wal`` (the default), an SQLite system database is put in
    SQLite's write-ahead-log mode when DBOS first connects: commits cost
    about a third, with the same durability; the database is then the
    file and its ``-wal`` and ``-shm`` files (copy all three). Pass
    ``False`` to keep SQLite's rollback journal. Postgres is unaffected.
    """
    url = system_database_url or os.environ.get("DBOS_SYSTEM_DATABASE_URL") or f"sqlite:///{name}.sqlite"
    register_workflows()
    settings.setdefault("application_version", APPLICATION_VERSION)
    if sqlite_wal:
        settings = with_write_ahead_log(url, settings)
    config: dict[str, Any] = {"name": name, "system_database_url": url, **settings}
    if prompt_recovery:
        recover_promptly()
    _report_runs_of_other_versions()
    return config  # type: ignore[return-value]


def recover_promptly() -> None:
    """Resume interrupted runs right after ``DBOS.launch()``, and wait on running ones every 100 ms.

    DBOS starts the runs it recovers at launch from an internal queue it
    first polls a second after launch, and a caller of a workflow that is
    already running (a recovered crew reaching the task DBOS recovers beside
    it, or an application calling again a run that is being recovered)
    checks on it once a second. This makes the first poll come within 50 ms
    (for the first seconds after launch) and the checks every 100 ms, for
    every workflow of this process: DBOS has no per-workflow setting for
    either. ``dbos_config`` does it for you; call it yourself before
    ``DBOS.launch()`` if you build your own DBOS config. Importing
    crew_durable changes nothing.
    """
    start_recovery_promptly()
    wait_for_existing_runs_promptly()


def register_workflows() -> None:
    """Register crew_durable's workflows with DBOS, so a launch can recover their runs.

    Defining an agent or a crew registers them too; a process that
    configures DBOS through crew_durable gets them even before it does
    (it then says which agent or crew a recovered run lacks, instead of
    DBOS saying that a workflow function is unknown).
    """
    importlib.import_module("crew_durable._crew")
    importlib.import_module("crew_durable._agent")
    importlib.import_module("crew_durable._flow_run")


_reporting_registered = False


def _report_runs_of_other_versions() -> None:
    """At launch, warn about crew_durable runs left pending under another application version.

    DBOS resumes (and dequeues) a run only in a process of the application
    version it was started under, and says nothing about the others: after
    a deploy that changed the version, their runs would wait unseen.
    """
    global _reporting_registered
    if _reporting_registered:
        return
    _reporting_registered = True
    after_launch(_warn_about_runs_of_other_versions)


def _warn_about_runs_of_other_versions() -> None:
    from dbos import DBOS

    try:
        mine = DBOS.application_version
        waiting = DBOS.list_workflows(status=["PENDING", "ENQUEUED"], load_input=False, load_output=False)
    except Exception:  # a check, never a failure of the launch
        logger.debug("Could not list the runs pending under other application versions", exc_info=True)
        return
    theirs = [
        status
        for status in waiting
        if status.app_version != mine
        and ATTR_FORMAT in (status.attributes or {})
        and (status.attributes or {}).get(ATTR_RUN) == status.workflow_id
    ]
    if theirs:
        versions = ", ".join(sorted({repr(status.app_version) for status in theirs}))
        logger.warning(
            f"{len(theirs)} crew_durable run(s) wait under application version {versions}, and this "
            f"process runs {mine!r}: DBOS resumes a run only in a process of the version it started "
            "under. Run a process of that version to finish them, or list them with `crew-durable "
            "runs --status PENDING --status ENQUEUED` and cancel them; see README, Upgrades."
        )
