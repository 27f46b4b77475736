"""How soon a recovered run gets going after a crash, and how soon its caller hears back.

    ./dev bench                 (after the overhead benchmark)
    python -m benchmarks.recovery [--trials 10] [--backends sqlite,postgres]

Each trial SIGKILLs a real process in the middle of a run and starts a new
one against the same system database, as the crash tests do
(tests/support/processes.py), then reads two delays off the checkpoints:

- resume: from ``DBOS.launch()`` returning to the start of the recovered
  task run's first new step (the calculator app, killed during its second
  completion). DBOS alone would start recovered runs at its internal
  queue's first poll, a second after launch.
- answer: from the last step of a recovered crew kickoff (the newsroom app,
  killed after its first task) to the return of a caller that asked for the
  same workflow id right after launch, while the kickoff was being
  recovered. DBOS alone would check on it once a second.

Each trial runs both ways, alternating: with crew_durable's prompt
recovery (``dbos_config``'s default, ``recover_promptly``) and with DBOS's
own timings (``dbos_config(..., prompt_recovery=False)``), which is all a
process gets that imports crew_durable without opting in.

Prints a table and writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from tests.support.databases import create
from tests.support.harness import PROMPT_RECOVERY
from tests.support.processes import Harness

RESULTS = Path(__file__).resolve().parent / "results"


VARIANTS = {"prompt": "1", "dbos": "0"}
"""crew_durable's prompt recovery, and DBOS's own timings."""


def _killed_then(
    mode: str, app: str, scenario: str, kill_at_request: int, backend: str, variant: str
) -> dict[str, Any]:
    """SIGKILL a run of ``app`` at a request, then run ``mode`` in a new process; its report."""
    with tempfile.TemporaryDirectory(prefix="crew-durable-recovery-") as directory:
        env = {PROMPT_RECOVERY: VARIANTS[variant]}
        harness = Harness(create(backend, Path(directory)), Path(directory), env=env)
        try:
            workflow_id = f"{app}-{uuid.uuid4()}"
            harness.run_until_killed(app, scenario, workflow_id, pause_at_request=kill_at_request)
            return harness.run(mode, app, scenario, workflow_id)
        finally:
            harness.database.drop()


def resume_delay(backend: str, variant: str) -> float:
    """Seconds from launch to the recovered calculator run's first new step."""
    report = _killed_then("recover", "calculator", "execute_task", 2, backend, variant)
    launched = float(report["launched_at"])
    return min(t for t in report["step_started_at"] if t >= launched) - launched


def answer_delay(backend: str, variant: str) -> float:
    """Seconds from a recovered kickoff's last step to the return of a caller waiting on it."""
    report = _killed_then("recall", "newsroom", "kickoff", 3, backend, variant)
    return float(report["returned_at"]) - float(report["last_step_completed_at"])


def measure(backend: str, trials: int) -> list[dict[str, Any]]:
    """Both variants, alternating trial by trial."""
    found: dict[str, dict[str, list[float]]] = {v: {"resume": [], "answer": []} for v in VARIANTS}
    for _ in range(trials):
        for variant in VARIANTS:
            found[variant]["resume"].append(resume_delay(backend, variant))
            found[variant]["answer"].append(answer_delay(backend, variant))
    return [
        {
            "backend": backend,
            "variant": variant,
            "trials": trials,
            "resume_seconds": found[variant]["resume"],
            "answer_seconds": found[variant]["answer"],
        }
        for variant in VARIANTS
    ]


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| backend | recovery | trials | launch to first new step: median / max | last step to caller's "
        "answer: median / max |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        resume, answer = r["resume_seconds"], r["answer_seconds"]
        lines.append(
            f"| {r['backend']} | {r['variant']} | {r['trials']} "
            f"| {statistics.median(resume) * 1000:.0f} / {max(resume) * 1000:.0f} ms "
            f"| {statistics.median(answer) * 1000:.0f} / {max(answer) * 1000:.0f} ms |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    print(f"Killing and recovering runs, {args.trials} trials per backend...")
    results = [row for backend in args.backends.split(",") for row in measure(backend, args.trials)]
    print()
    print(table(results))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"recovery-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nWritten to {out}")


if __name__ == "__main__":
    main()
