"""Pins what ``crew_durable._dbos_internals`` assumes about DBOS's private parts.

Each test fails if a DBOS upgrade changes one of those assumptions, before a
durable run could silently get a wrong step id or a slow recovery.
"""

from __future__ import annotations

import inspect
import threading
import uuid

import pytest
from dbos import DBOS, SetWorkflowID, _core, _dbos

from crew_durable import _dbos_internals as internals
from tests.support.databases import Database


@DBOS.step()
def _tagged(tag: str) -> str:
    return tag


@DBOS.workflow()
def _child(tag: str) -> str:
    return tag


@DBOS.workflow()
def _predicts_child_ids() -> tuple[str | None, str]:
    _tagged("before")
    predicted = internals.next_workflow_id()
    return predicted, DBOS.start_workflow(_child, "child").workflow_id


@DBOS.workflow()
def _steps_in_reversed_threads() -> str:
    ranges = internals.reserve_step_ranges(2)
    assert ranges is not None

    def run(index: int) -> None:
        with internals.running_in(ranges[index]):
            _tagged(f"range-{index}")

    for index in (1, 0):  # the second range runs first
        thread = threading.Thread(target=run, args=(index,))
        thread.start()
        thread.join()
    return _tagged("after")


@DBOS.workflow()
def _overflows_its_range() -> None:
    ranges = internals.reserve_step_ranges(1)
    assert ranges is not None
    with internals.running_in(ranges[0]):
        for index in range(internals.RANGE_SIZE + 1):
            _tagged(str(index))


def test_dbos_reports_that_it_launched(launched: Database) -> None:
    assert internals.dbos_launched()


def test_the_next_workflow_id_is_the_one_set_workflow_id_gives(launched: Database) -> None:
    workflow_id = f"wf-{uuid.uuid4()}"
    with SetWorkflowID(workflow_id):
        assert internals.next_workflow_id() == workflow_id
        assert internals.consumed_workflow_id() is None
        _child("x")
        assert internals.consumed_workflow_id() == workflow_id
    assert internals.next_workflow_id() is None


def test_the_next_child_workflow_id_is_the_one_dbos_assigns(launched: Database) -> None:
    with SetWorkflowID(f"parent-{uuid.uuid4()}"):
        predicted, actual = _predicts_child_ids()
    assert predicted == actual


def test_reserved_ranges_fix_step_ids_whatever_the_thread_order(launched: Database) -> None:
    workflow_id = f"ranges-{uuid.uuid4()}"
    with SetWorkflowID(workflow_id):
        assert _steps_in_reversed_threads() == "after"

    steps = {s["function_id"]: s["output"] for s in DBOS.list_workflow_steps(workflow_id)}
    size = internals.RANGE_SIZE
    assert steps == {1: "range-0", size + 1: "range-1", 2 * size + 1: "after"}

    with SetWorkflowID(workflow_id):  # the recorded result comes back without a mismatch
        assert _steps_in_reversed_threads() == "after"


def test_a_range_refuses_to_take_its_neighbours_ids(launched: Database) -> None:
    with SetWorkflowID(f"overflow-{uuid.uuid4()}"), pytest.raises(internals.StepRangeExhaustedError):
        _overflows_its_range()


def test_ranges_need_a_workflow() -> None:
    assert internals.reserve_step_ranges(3) is None


def test_the_polling_knobs_still_exist() -> None:
    queue = _dbos._get_or_create_dbos_registry().get_internal_queue()
    assert isinstance(queue._polling_interval_sec, float)
    assert callable(_dbos._get_or_create_dbos_registry().register_poller)
    assert internals.EXISTING_RUN_POLL_SECONDS == _core.DEFAULT_POLLING_INTERVAL


def test_dbos_reports_that_it_is_configured(launched: Database) -> None:
    assert internals.dbos_configured()


def test_every_step_body_goes_through_invoke_step() -> None:
    """crew_durable.testing watches step bodies by wrapping this one function."""
    parameters = list(inspect.signature(_core.invoke_step).parameters)
    assert parameters[:5] == ["dbos", "step_ctx", "func", "args", "kwargs"]  # passed positionally
