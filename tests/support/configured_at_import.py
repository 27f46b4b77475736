"""An application module that configures DBOS when imported, as crash tests must not find."""

from __future__ import annotations

from dbos import DBOS

from crew_durable import dbos_config

DBOS(config=dbos_config("configured_at_import", "sqlite:///configured_at_import.sqlite"))


def run() -> str:
    return "never reached"
