"""Points where a harness process can stop and wait to be killed.

``$HARNESS_PAUSE_MARKER`` is the file a paused process writes; tools call
:func:`tool_started` so that a test can kill a process in the middle of a
given tool call (``$HARNESS_PAUSE_IN_TOOL`` = the tool's name).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_MARKER = "HARNESS_PAUSE_MARKER"
PAUSE_IN_TOOL = "HARNESS_PAUSE_IN_TOOL"


def pause() -> None:
    """Tell the test this process reached its kill point, and wait to be killed."""
    Path(os.environ[PAUSE_MARKER]).write_text(str(os.getpid()))
    while True:
        time.sleep(60)


def tool_started(name: str) -> None:
    """A tool reached the point ``name``: pause there if the test asked for it."""
    if name == os.environ.get(PAUSE_IN_TOOL):
        pause()
