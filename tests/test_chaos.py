"""The chaos test: the orders crew SIGKILLed at seeded random points, then recovered.

Every trial must recover with the uninterrupted output, with each completed
keyed tool step's effect applied exactly once (even the step in flight at
the kill) and no step-order error. The figures are printed (run pytest with
-s, or `python -m tests.support.chaos`) and written to benchmarks/results/.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from tests.support import chaos
from tests.support.cassettes import ROOT

TRIALS = {"postgres": 8, "sqlite": 4}
"""The short form CI runs; `./dev chaos` runs the long form (30 and 10 trials, figures in README)."""
SEED = 20261123


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_side_effects_happen_once_whatever_the_kill_point(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = chaos.run(backend, TRIALS[backend], SEED, tmp_path)
    figures = chaos.summary(backend, SEED, results)
    with capsys.disabled():
        chaos.print_summary(figures)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    trials = [asdict(t) for t in results]
    (out / f"chaos-{backend}.json").write_text(json.dumps({"summary": figures, "trials": trials}, indent=2))

    failed = [t for t in results if not t.passed]
    assert not failed, f"{len(failed)} trials failed: {failed}"
    assert figures["trials"] == TRIALS[backend]
    assert figures["keyed_duplicates"] == 0
    assert figures["step_order_or_other_errors"] == 0
    assert figures["killed_mid_run"] == TRIALS[backend]  # every kill interrupted a pending workflow
