"""Importing crew_durable changes nothing in DBOS or crewAI: a user's own workflows run as they did."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.cassettes import ROOT

PROBE = """
import json
from crewai.events.event_bus import crewai_event_bus
from crewai.hooks.dispatch import InterceptionPoint, get_global_hook_list
from dbos import _core, _dbos

def state():
    queue = _dbos._get_or_create_dbos_registry().get_internal_queue()
    return {
        "existing_run_poll": _core.DEFAULT_POLLING_INTERVAL,
        "recovery_poll": queue._polling_interval_sec,
        "bus_handlers": sum(len(h) for h in crewai_event_bus._sync_handlers.values()),
        "tool_hooks": len(get_global_hook_list(InterceptionPoint.PRE_TOOL_CALL)),
    }

before = state()
import crew_durable
after_import = state()
crew_durable.dbos_config("probe", "sqlite:///unused.sqlite")
after_config = state()
print(json.dumps([before, after_import, after_config]))
"""


def test_importing_crew_durable_changes_nothing_its_config_helper_says_what_it_changes() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True)
    before, after_import, after_config = json.loads(out.stdout.strip().splitlines()[-1])
    assert after_import == before  # a user's own @DBOS.workflow keeps DBOS's timings
    assert before["existing_run_poll"] == 1.0 and before["recovery_poll"] == 1.0
    assert after_config == {**before, "existing_run_poll": 0.1, "recovery_poll": 0.05}  # dbos_config opts in
