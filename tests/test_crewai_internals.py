"""Pins what crew_durable assumes about crewAI's private parts (``crew_durable._crewai_internals``).

One test per private name: a crewAI release that renames one, changes its
parameters, makes it sync or async, or drops an attribute fails the test
named after it, before a durable run could crash three layers away.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
from pathlib import Path
from typing import Any

import pytest
from crewai import Agent, Crew, Task
from crewai.llms.base_llm import BaseLLM

from crew_durable import _crewai_internals as internals
from crew_durable._crewai_internals import SEAMS, Seam

PACKAGE = Path(internals.__file__).parent


def _crewai_imports() -> dict[str, set[str]]:
    """Every crewAI module crew_durable imports, with the names it takes from each."""
    imports: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module == "crewai" or node.module.startswith("crewai."):
                    imports.setdefault(node.module, set()).update(alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("crewai."):
                        imports.setdefault(alias.name, set())
    return imports


CREWAI_IMPORTS = _crewai_imports()


@pytest.mark.parametrize("module", sorted(CREWAI_IMPORTS))
def test_crewai_still_provides(module: str) -> None:
    """crewAI's internal modules crew_durable imports from, and the names it takes: one test per module."""
    imported = importlib.import_module(module)
    missing = sorted(
        name
        for name in CREWAI_IMPORTS[module]
        if not hasattr(imported, name) and importlib.util.find_spec(f"{module}.{name}") is None
    )
    assert not missing, f"{module} no longer has {missing}"


def _owner(seam: Seam) -> Any:
    module_name, _, name = seam.owner.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, name) if name else module


@pytest.mark.parametrize("seam", SEAMS, ids=[seam.label for seam in SEAMS])
def test_crewai_still_has(seam: Seam) -> None:
    owner = _owner(seam)
    if seam.kind in ("method", "async method"):
        found = inspect.getattr_static(owner, seam.name, None)
        assert found is not None, f"{seam.label} is gone"
        function = inspect.unwrap(getattr(owner, seam.name))
        params = [p for p in inspect.signature(function).parameters if p not in ("self", "cls")]
        assert tuple(params) == seam.params, f"{seam.label} now takes {params}"
        assert inspect.iscoroutinefunction(function) == (seam.kind == "async method")
    elif seam.kind == "private attr":
        assert seam.name in owner.__private_attributes__, f"{seam.label} is no longer a private attribute"
    elif seam.kind == "attribute":
        assert hasattr(owner, seam.name), f"{seam.label} is gone"
    elif seam.kind == "instance attribute":
        assert hasattr(owner(), seam.name), f"{seam.label} is gone"
    else:
        pytest.fail(f"unknown kind {seam.kind!r}")


def test_every_seam_names_where_it_is_used() -> None:
    names = {seam.label for seam in SEAMS}
    assert len(names) == len(SEAMS)
    for seam in SEAMS:
        assert seam.used_by, seam.label


def test_the_private_names_in_crew_durable_are_all_declared() -> None:
    """Every ``x._name`` crew_durable reads on a crewAI object is a declared seam (or its own name)."""
    declared = {seam.name for seam in SEAMS} | {internals.RATE_LIMIT_MARKER}
    own: set[str] = set()
    used: dict[str, str] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                own.add(node.name)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                own.add(node.target.id)
            elif isinstance(node, ast.Assign):
                own.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and node.attr[1] != "_":
                used.setdefault(node.attr, f"{path.name}:{node.lineno}")
    classes = {Agent, Crew, Task, BaseLLM} | {o for o in map(_owner, SEAMS) if isinstance(o, type)}
    crewai_names = {
        name
        for cls in classes
        for name in (*getattr(cls, "__private_attributes__", {}), *dir(cls))
        if name.startswith("_") and not name.startswith("__")
    }
    undeclared = {
        name: where for name, where in used.items() if name in crewai_names and name not in declared | own
    }
    assert not undeclared, f"private crewAI names used but not declared in SEAMS: {undeclared}"


def test_the_accessors_read_what_crewai_sets() -> None:
    agent = Agent(role="r", goal="g", backstory="b", llm="gpt-4o-mini")
    crew = Crew(agents=[agent], tasks=[Task(description="d", expected_output="o", agent=agent)])
    assert internals.token_process(agent) is not None
    assert internals.rpm_controller(agent) is None  # no max_rpm
    assert internals.crew_memory(crew) is None  # memory off
    internals.reset_times_executed(agent)
    counters = internals.token_usage(agent.llm)
    assert isinstance(counters, dict) and "total_tokens" in counters
    internals.set_token_usage(agent.llm, dict.fromkeys(counters, 0))
    assert internals.token_usage(agent.llm)["total_tokens"] == 0
    sync_handlers, async_handlers = internals.event_handler_tables()
    assert isinstance(sync_handlers, dict) and isinstance(async_handlers, dict)


def test_the_rate_limit_marker_is_the_one_base_llm_checks() -> None:
    source = inspect.getsource(BaseLLM)
    assert f'"{internals.RATE_LIMIT_MARKER}"' in source
