"""Planning: an agent's plan and a crew's plan are steps; todos crewAI runs in parallel replay in order."""

from __future__ import annotations

import uuid
from pathlib import Path

from dbos import SetWorkflowID

from crew_durable import DBOSLLM
from crew_durable._dbos_internals import RANGE_SIZE
from tests.support import ledger
from tests.support.apps import briefing, planner
from tests.support.cassettes import played, replay
from tests.support.databases import Database
from tests.support.harness import workflow_tree
from tests.support.processes import Harness
from tests.support.steps import work_steps

ANSWER = "Lima is sunnier: Oslo has rain tomorrow, Lima has sun."
UNINTERRUPTED_REQUESTS = 6  # the plan; two completions per todo; the synthesis


def test_each_parallel_todo_records_its_steps_in_a_range_of_its_own(
    launched: Database, side_effects: Path
) -> None:
    workflow_id = f"plan-{uuid.uuid4()}"
    with replay("planner.compare") as cassette, SetWorkflowID(workflow_id):
        assert planner.compare() == ANSWER
    assert played(cassette) == UNINTERRUPTED_REQUESTS

    steps = {s["function_id"]: (s["function_name"], s["output"]) for s in work_steps(workflow_id)}
    plan = min(steps)  # (before it: the run's task_started event)
    oslo, lima, after = plan + 1, plan + 1 + RANGE_SIZE, plan + 1 + 2 * RANGE_SIZE
    assert steps[plan][0] == "planner.llm"

    def in_range(start: int) -> list[tuple[str, object]]:
        return [steps[i] for i in sorted(steps) if start <= i < start + RANGE_SIZE]

    assert [name for name, _ in in_range(oslo)] == ["planner.llm", "forecast", "planner.llm"]
    assert in_range(oslo)[1][1] == "Oslo: rain tomorrow"  # the first todo's range, though Lima finished first
    assert in_range(lima)[1][1] == "Lima: sun tomorrow"
    assert in_range(after)[0][0] == "planner.llm"  # the synthesis, after both ranges
    assert len(steps) == UNINTERRUPTED_REQUESTS + 2

    with replay("planner.compare") as cassette, SetWorkflowID(workflow_id):
        assert planner.compare() == ANSWER
    assert played(cassette) == 0


def test_a_plan_killed_while_its_todos_run_in_parallel_recovers(
    system_database: Database, tmp_path: Path
) -> None:
    harness = Harness(system_database, tmp_path)
    workflow_id = f"plan-{uuid.uuid4()}"
    harness.run_until_killed(
        "planner",
        "compare",
        workflow_id,
        pause_in_tool="forecast:Oslo",
        also_wait_for=lambda: "Lima: sun tomorrow" in harness.recorded_outputs(workflow_id),
    )
    report = harness.run("recover", "planner", "compare", workflow_id)

    assert report["result"] == ANSWER
    assert harness.requests() <= UNINTERRUPTED_REQUESTS + 1
    assert ledger.count_where(harness.ledger, tool="forecast", city="Lima") == 1
    assert ledger.count_where(harness.ledger, tool="forecast", city="Oslo") == 1


def test_a_planning_llm_of_its_own_is_a_step_not_counted_as_the_agents_usage(launched: Database) -> None:
    agent = planner.thrifty_planner
    workflow_id = f"plan-{uuid.uuid4()}"
    before = agent.llm.get_token_usage_summary().successful_requests
    with replay("planner.compare_thrifty") as cassette, SetWorkflowID(workflow_id):
        assert planner.compare(agent) == ANSWER
    assert played(cassette) == UNINTERRUPTED_REQUESTS

    names = [s["function_name"] for s in work_steps(workflow_id)]
    assert names[0] == "thrifty_planner.planning_llm"
    assert names.count("thrifty_planner.planning_llm") == 1
    assert agent.llm.get_token_usage_summary().successful_requests - before == UNINTERRUPTED_REQUESTS - 1


def test_a_copy_plans_with_the_same_durable_planning_llm() -> None:
    copied = planner.thrifty_planner.copy()
    assert copied.planning_config is not None
    assert isinstance(copied.planning_config.llm, DBOSLLM)
    assert copied.planning_config.llm.step_name == "thrifty_planner.planning_llm"


def test_crew_planning_is_recorded_once_and_matches_the_plain_crew(
    launched: Database, side_effects: Path
) -> None:
    with replay("briefing.kickoff"):
        plain = briefing.build_crew().kickoff()
    workflow_id = f"briefing-{uuid.uuid4()}"
    with replay("briefing.kickoff") as cassette, SetWorkflowID(workflow_id):
        durable = briefing.briefing.kickoff()

    assert durable.model_dump(mode="json") == plain.model_dump(mode="json")  # the plans in descriptions too
    assert briefing.PLANS[1] in durable.tasks_output[0].description
    assert played(cassette) == BRIEFING_REQUESTS
    top_level = [step if isinstance(step, str) else step[0] for step in workflow_tree(workflow_id)]
    assert top_level == ["briefing.planning_llm", "crew_durable.agent_run", "crew_durable.agent_run"]


def test_a_recovered_crew_reads_its_recorded_plan(system_database: Database, tmp_path: Path) -> None:
    harness = Harness(system_database, tmp_path)
    workflow_id = f"briefing-{uuid.uuid4()}"
    harness.run_until_killed("briefing", "kickoff", workflow_id, pause_in_tool="look_up")
    report = harness.run("recover", "briefing", "kickoff", workflow_id)

    assert report["result"]["raw"] == "Briefing: we launch on 3 March."
    assert briefing.PLANS[2] in report["result"]["tasks_output"][1]["description"]
    assert harness.requests() == BRIEFING_REQUESTS  # the plan was not asked for again
    assert ledger.count(harness.ledger, "look_up") == 1


BRIEFING_REQUESTS = 4  # the plan; the scout's two completions; the writer's
