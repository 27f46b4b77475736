"""crew_durable.testing, used as a user would on their own crew (``tests/support/bookshop.py``).

The crew's steps, in order: ``bookshop.clerk.llm``, ``check_stock``,
``bookshop.clerk.llm`` (the first task), ``bookshop.buyer.llm``,
``bookshop.buyer.tool.place_order``, ``bookshop.buyer.llm`` (the second).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crew_durable.testing import (
    CrashTester,
    CrashTestError,
    crash_and_recover,
    crash_tester,  # noqa: F401  - the pytest fixture
    target_path,
)
from tests.support import ledger
from tests.support.bookshop import brain, restock
from tests.support.databases import Database
from tools.fake_openai import FakeOpenAI, serve

ORDERED = '{"ordered": "order 1042: 5 x Dune"}'
STEPS = [
    "bookshop.clerk.llm",
    "check_stock",
    "bookshop.clerk.llm",
    "bookshop.buyer.llm",
    "bookshop.buyer.tool.place_order",
    "bookshop.buyer.llm",
]


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    with serve(brain) as server:
        yield server


def test_a_crew_killed_at_its_fourth_step_recovers_without_paying_again(
    system_database: Database, tmp_path: Path, model: FakeOpenAI
) -> None:
    report = crash_and_recover(
        "tests.support.bookshop:restock",
        kill_at_step=4,  # the buyer's first completion, in flight
        database_url=system_database.url,
        directory=tmp_path,
        env={"BOOKSHOP_LLM_URL": model.base_url, ledger.ENV: str(tmp_path / "ledger.jsonl")},
        fork_server=True,
    )

    assert report.output == ORDERED
    assert report.steps == STEPS
    assert report.killed_in == "step 4 (bookshop.buyer.llm)"
    assert report.requests_before_kill == {"bookshop.clerk.llm": 2, "bookshop.buyer.llm": 1}
    assert report.requests_after_kill == {"bookshop.buyer.llm": 2}  # the one in flight, and the last
    assert report.executed_twice == ["bookshop.buyer.llm"]
    # The completion in flight at the kill is counted in both processes: it had started, but
    # the kill came before its request reached the model.
    assert sum(report.requests.values()) == len(model.requests) + 1 == 5
    assert ledger.count(tmp_path / "ledger.jsonl", "check_stock") == 1
    assert ledger.count(tmp_path / "ledger.jsonl", "place_order") == 1


def test_a_crew_killed_inside_a_tool_runs_that_tool_again_and_nothing_before_it(
    system_database: Database, tmp_path: Path, model: FakeOpenAI
) -> None:
    env = {"BOOKSHOP_LLM_URL": model.base_url, ledger.ENV: str(tmp_path / "ledger.jsonl")}
    with CrashTester(
        database_url=system_database.url, directory=tmp_path, env=env, fork_server=True
    ) as tester:
        report = tester.crash_and_recover(restock, kill_in_tool="place_order")

    assert report.output == ORDERED
    assert report.steps == STEPS
    assert report.killed_in == "tool place_order"
    assert report.executed_after_kill == ["bookshop.buyer.tool.place_order", "bookshop.buyer.llm"]
    assert report.requests_after_kill == {"bookshop.buyer.llm": 1}
    assert ledger.count(tmp_path / "ledger.jsonl", "place_order") == 1  # killed before its effect


def test_the_crash_tester_fixture(crash_tester: CrashTester, model: FakeOpenAI) -> None:  # noqa: F811
    """The fixture (``pytest_plugins = ["crew_durable.testing"]`` in conftest.py, or imported)."""
    crash_tester.env = {"BOOKSHOP_LLM_URL": model.base_url}
    crash_tester.fork_server = True
    report = crash_tester.crash_and_recover(restock, kill_in_tool="check_stock")

    assert report.output == ORDERED
    assert report.steps == STEPS
    assert report.executed_before_kill == ["bookshop.clerk.llm"]
    assert report.requests == {"bookshop.clerk.llm": 2, "bookshop.buyer.llm": 2}


def test_a_kill_point_the_run_never_reaches_says_how_far_it_got(tmp_path: Path, model: FakeOpenAI) -> None:
    with pytest.raises(CrashTestError, match=r"before reaching step 7: it ran 6 steps"):
        crash_and_recover(
            restock,
            kill_at_step=7,
            directory=tmp_path,
            env={"BOOKSHOP_LLM_URL": model.base_url},
            fork_server=True,
        )


def test_targets_must_be_importable_by_a_new_process() -> None:
    assert target_path(restock) == "tests.support.bookshop:restock"
    with pytest.raises(ValueError, match="module level"):
        target_path(lambda: None)
    with pytest.raises(ValueError, match="'module:attribute'"):
        target_path("restock")
    with CrashTester() as tester, pytest.raises(ValueError, match="exactly one kill point"):
        tester.run_until_killed(restock)


def test_a_target_module_that_configures_dbos_at_import_is_refused(tmp_path: Path) -> None:
    """Its configuration would win, and the crash test would run on the app's database, not the test's."""
    with pytest.raises(CrashTestError, match="DBOS was configured while importing") as refused:
        crash_and_recover(
            "tests.support.configured_at_import:run", kill_at_step=1, directory=tmp_path, fork_server=True
        )
    assert "not at import" in str(refused.value)
    assert not Path("configured_at_import.sqlite").exists()  # the app's database was never opened
