"""Bad input gets a clear error that says what to do."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from crewai import Agent, Crew, Task
from crewai.agent.planning_config import PlanningConfig
from crewai.llms.base_llm import BaseLLM

from crew_durable import (
    CrewDurableError,
    DBOSAgent,
    DBOSCrew,
    InvalidNameError,
    LateDefinitionWarning,
    NotRecoverableError,
    StepConfig,
)
from tests.support import harness
from tests.support.cassettes import ROOT, fake_llm
from tests.support.databases import Database
from tests.support.processes import Harness


def plain_agent(**fields: Any) -> Agent:
    return Agent(role="Checker", goal="Check things", backstory="Careful.", llm=fake_llm(), **fields)


@pytest.mark.parametrize("name", ["", "   ", None, " padded "])
def test_an_agent_needs_a_usable_name(name: Any) -> None:
    with pytest.raises(InvalidNameError, match="name"):
        DBOSAgent(agent_name=name, orig_agent=plain_agent())


@pytest.mark.filterwarnings("ignore::crew_durable.LateDefinitionWarning")
def test_a_duplicate_agent_name_is_refused_at_construction() -> None:
    name = f"unique-{uuid.uuid4()}"
    DBOSAgent(agent_name=name, orig_agent=plain_agent())
    with pytest.raises(InvalidNameError, match="already defined"):
        DBOSAgent(agent_name=name, orig_agent=plain_agent())


def _crew_of(*agents: Any) -> Crew:
    tasks = [Task(description=f"Check {n}.", expected_output="OK", agent=a) for n, a in enumerate(agents)]
    return Crew(agents=list(agents), tasks=tasks)


@pytest.mark.filterwarnings("ignore::crew_durable.LateDefinitionWarning")
def test_crew_agents_whose_roles_give_one_name_must_be_named_by_the_user() -> None:
    crew_name = f"twins-{uuid.uuid4().hex[:8]}"
    first, second = plain_agent(), Agent(role="checker!", goal="g", backstory="b", llm=fake_llm())
    with pytest.raises(InvalidNameError, match=rf"'{crew_name}\.checker'.*DBOSAgent\(agent_name="):
        DBOSCrew(crew_name=crew_name, orig_crew=_crew_of(first, second))

    named = DBOSAgent(agent_name=f"{crew_name}.lead_checker", orig_agent=first)
    durable = DBOSCrew(crew_name=crew_name, orig_crew=_crew_of(named, second))
    names = [agent.agent_name for agent in durable.crew.agents]  # type: ignore[attr-defined]
    assert names == [f"{crew_name}.lead_checker", f"{crew_name}.checker"]


@pytest.mark.filterwarnings("ignore::crew_durable.LateDefinitionWarning")
def test_a_duplicate_crew_name_is_refused_before_its_agents_are_wrapped() -> None:
    crew_name = f"crew-{uuid.uuid4().hex[:8]}"
    DBOSCrew(crew_name=crew_name, orig_crew=_crew_of(plain_agent()))
    with pytest.raises(InvalidNameError, match=rf"A crew named '{crew_name}' is already defined"):
        DBOSCrew(crew_name=crew_name, orig_crew=_crew_of(plain_agent()))


def test_orig_agent_must_be_a_crewai_agent() -> None:
    with pytest.raises(TypeError, match=r"crewai\.Agent"):
        DBOSAgent(agent_name=f"typed-{uuid.uuid4()}", orig_agent="not an agent")  # type: ignore[arg-type]


def test_a_plan_step_timeout_is_refused_with_what_to_use_instead() -> None:
    planning = PlanningConfig(step_timeout=30)
    with pytest.raises(CrewDurableError, match="max_step_iterations"):
        DBOSAgent(agent_name="timed_planner", orig_agent=plain_agent(planning_config=planning))


def test_step_config_rejects_impossible_settings() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        StepConfig(max_attempts=0)


def test_an_agent_defined_after_launch_warns_that_its_runs_cannot_be_recovered(launched: Database) -> None:
    with pytest.warns(LateDefinitionWarning, match=r"before DBOS\.launch"):
        DBOSAgent(agent_name=f"late-{uuid.uuid4()}", orig_agent=plain_agent())


class OddLLM(BaseLLM):
    """An LLM whose completion is not data that can be recorded."""

    def call(self, *args: Any, **kwargs: Any) -> Any:
        return object()


def test_an_unrecordable_completion_names_the_llm_step(launched: Database) -> None:
    with pytest.warns(LateDefinitionWarning):
        agent = DBOSAgent(
            agent_name=f"odd-{launched.backend}",
            orig_agent=Agent(role="Odd", goal="g", backstory="b", llm=OddLLM(model="odd-1")),
            llm_step_config=StepConfig(retries_allowed=True, interval_seconds=0),
        )
    task = Task(description="Say hi", expected_output="hi", agent=agent)
    with pytest.raises(NotRecoverableError, match=f"'odd-{launched.backend}.llm'"):
        agent.execute_task(task)


def test_running_before_dbos_is_launched_says_what_to_do() -> None:
    script = (
        "from tests.support import env\n"
        "from tests.support.apps import calculator\n"
        "calculator.execute_task()\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert completed.returncode != 0
    assert isinstance(completed.stderr, str)
    assert "CrewDurableError" in completed.stderr
    assert "DBOS.launch()" in completed.stderr
    assert issubclass(CrewDurableError, Exception)


def test_a_recovered_run_whose_agent_is_gone_fails_naming_it(
    system_database: Database, tmp_path: Path
) -> None:
    pinned = Harness(system_database, tmp_path, env={harness.APP_VERSION: "pinned-for-test"})
    workflow_id = f"task-{uuid.uuid4()}"
    pinned.run_until_killed("calculator", "execute_task", workflow_id, pause_at_request=2)

    report = pinned.run_in_new_interpreter("orphan", "-", "-", workflow_id)

    assert "No agent named 'calculator' is defined in this process" in report["error"]
    assert report["seconds"] < 10
