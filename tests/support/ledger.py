"""A side-effect ledger: tools append a line per real execution.

The ledger is a file (``$CREW_DURABLE_TEST_LEDGER``) so that executions in a
killed process and in the process that recovered it can be counted together.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ENV = "CREW_DURABLE_TEST_LEDGER"


def record(tool: str, **details: Any) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    line = json.dumps({"tool": tool, **details}, sort_keys=True)
    with open(path, "a", encoding="utf-8") as ledger:
        ledger.write(line + "\n")
        ledger.flush()
        os.fsync(ledger.fileno())


def path() -> Path:
    """This process's ledger file."""
    return Path(os.environ[ENV])


def entries(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def count(path: Path, tool: str) -> int:
    return sum(1 for entry in entries(path) if entry["tool"] == tool)


def count_where(path: Path, **fields: Any) -> int:
    return sum(1 for entry in entries(path) if all(entry.get(k) == v for k, v in fields.items()))
