"""README's main job: the crash-and-recover demo runs offline and tells the truth."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.cassettes import ROOT


def test_the_demo_kills_a_crew_and_recovers_it_offline() -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("OPENAI_API_KEY", "DBOS_SYSTEM_DATABASE_URL")
    }
    completed = subprocess.run(
        [sys.executable, "-m", "examples.crash_and_recover"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = completed.stdout
    assert "killed the worker with SIGKILL" in out
    assert out.count("checkpoint, from the killed run") == 5
    assert out.count("ran fresh after the restart") == 1
    assert "Articles published: 1 " in out
    killed_worker = 4 if "LLM requests: 4 in the killed" in out else 3  # the last one may be in flight
    assert f"LLM requests: {killed_worker} in the killed worker + 1 in the recovering one" in out
    assert '"url": "https://news.example.com/durable-ai-agents-survive-crashes"' in out
