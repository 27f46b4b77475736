"""Points where a test process can stop and wait to be killed.

A thin layer over :mod:`crew_durable.testing`. The test apps' tools call
:func:`tool_started`, a named kill point that works both in a process of
``crew_durable.testing`` (``kill_in_tool=name``) and in a harness process
(``$HARNESS_PAUSE_IN_TOOL`` = name). ``$HARNESS_PAUSE_MARKER`` is the file a
paused harness process writes.
"""

from __future__ import annotations

import os
from pathlib import Path

from crew_durable.testing import pause_here, wait_to_be_killed

PAUSE_MARKER = "HARNESS_PAUSE_MARKER"
PAUSE_IN_TOOL = "HARNESS_PAUSE_IN_TOOL"


def pause() -> None:
    """Tell the harness test this process reached its kill point, and wait to be killed."""
    wait_to_be_killed(Path(os.environ[PAUSE_MARKER]), str(os.getpid()))


def tool_started(name: str) -> None:
    """A tool reached the point ``name``: pause there if the test asked for it."""
    if name == os.environ.get(PAUSE_IN_TOOL):
        pause()
    pause_here(name)
