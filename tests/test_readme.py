"""README's code runs as written: every Python snippet compiles, and the quickstart runs end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.cassettes import FAKE_PORT
from tools.fake_openai import serve, tool_call

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _snippets() -> list[str]:
    return _BLOCK.findall(README.read_text(encoding="utf-8"))


def test_readme_has_the_snippets_this_test_reads() -> None:
    assert len(_snippets()) >= 5
    assert "DBOS.launch()" in _snippets()[0]  # the quickstart comes first


@pytest.mark.parametrize("number", range(len(_snippets())))
def test_every_python_snippet_is_valid_python_in_a_script(number: int) -> None:
    """Pasted into a script, no snippet is a syntax error (a top-level ``await`` would be)."""
    compile(_snippets()[number], f"README.md python block {number + 1}", "exec")


def _calculator(body: dict[str, Any]) -> dict[str, Any]:
    """The quickstart's model: it multiplies with the tool, then answers with the product."""
    asked = " ".join(str(m.get("content")) for m in body["messages"] if m["role"] == "user")
    first, second = (int(n) for n in re.findall(r"What is (\d+) times (\d+)", asked)[-1])
    results = [str(m["content"]) for m in body["messages"] if m["role"] == "tool"]
    if not results:
        arguments = {"first_number": first, "second_number": second}
        return {"tool_calls": [tool_call("multiplier", arguments, "c1")]}
    return {"content": f"{float(results[-1]):g}"}


def test_the_quickstart_runs_as_written(tmp_path: Path, fixed_ports: None) -> None:
    """The quickstart, pasted into a file and run with a model at OPENAI_BASE_URL (here, the fake)."""
    script = tmp_path / "quickstart.py"
    script.write_text(_snippets()[0], encoding="utf-8")
    env = {
        key: value for key, value in os.environ.items() if key not in ("DBOS_SYSTEM_DATABASE_URL", "MODEL")
    }
    env.update(OPENAI_API_KEY="sk-quickstart-test", OPENAI_BASE_URL=f"http://127.0.0.1:{FAKE_PORT}/v1")
    with serve(_calculator, port=FAKE_PORT) as server:
        completed = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert completed.returncode == 0, completed.stderr[-4000:]
        # execute_task, kickoff, start, two kickoff_for_each kickoffs, Agent.kickoff: two requests each
        assert len(server.requests) == 12
    assert (tmp_path / "my-app.sqlite").exists()  # SQLite by default, beside the script
