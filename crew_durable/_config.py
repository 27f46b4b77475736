"""DBOS configuration: SQLite by default, Postgres when the environment says so."""

from __future__ import annotations

import os
from typing import Any

from dbos import DBOSConfig


def dbos_config(name: str, system_database_url: str | None = None, **settings: Any) -> DBOSConfig:
    """A DBOS config for application ``name``.

    The system database is ``system_database_url`` if given, else
    ``$DBOS_SYSTEM_DATABASE_URL`` (``postgresql://...`` in production), else
    an embedded SQLite file ``<name>.sqlite`` in the working directory.
    Other DBOS settings (``application_version``, ``executor_id``...) pass
    through unchanged.
    """
    url = system_database_url or os.environ.get("DBOS_SYSTEM_DATABASE_URL") or f"sqlite:///{name}.sqlite"
    config: dict[str, Any] = {"name": name, "system_database_url": url, **settings}
    return config  # type: ignore[return-value]
