"""The scale benchmarks in one picture: benchmarks/scale.png.

    python -m benchmarks.plot

Reads the latest JSON of each scale benchmark from benchmarks/results/
(``<name>-latest.json``) and draws what it finds: the time added per
completion (peer comparison), storage against conversation length, recovery
time against finished steps, and concurrent throughput.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.overhead import RESULTS

PNG = Path(__file__).resolve().parent / "scale.png"


def _latest(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}-latest.json"
    return json.loads(path.read_text()) if path.exists() else None


def main() -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(13, 9))
    (overhead_ax, storage_ax), (depth_ax, concurrency_ax) = axes

    peer = _latest("peer")
    if peer:
        labels, values = ["crewAI checkpoints\n(JSON files)"], [0.0]
        values[0] = peer["results"][0]["ms_per_completion_over_plain"]["checkpoint"]
        for r in peer["results"]:
            labels.append(f"crew_durable\n({r['backend']})")
            values.append(r["ms_per_completion_over_plain"]["durable"])
        bars = overhead_ax.bar(labels, values, color=["#999999", "#1f77b4", "#2ca02c"][: len(values)])
        overhead_ax.bar_label(bars, fmt="%.1f ms")
        overhead_ax.set_ylabel("ms added per completion over plain crewAI")
        overhead_ax.set_title("Overhead per step (model answering at once)")

    storage = _latest("storage")
    if storage:
        for r in storage["results"]:
            messages = [c["messages"] for c in r["conversation"]]
            storage_ax.plot(
                messages,
                [c["bytes_written"] / 1024 for c in r["conversation"]],
                "o-",
                label=f"written per run ({r['backend']})",
            )
            storage_ax.plot(
                messages,
                [c["completion_record_bytes"]["max"] / 1024 for c in r["conversation"]],
                "s--",
                label=f"largest completion record ({r['backend']})",
            )
        storage_ax.set_xlabel("messages in the conversation")
        storage_ax.set_ylabel("kB")
        storage_ax.set_title("Storage: linear in the conversation, flat per step")
        storage_ax.legend(fontsize=8)

    depth = _latest("depth")
    if depth:
        for r in depth["results"]:
            steps = [d["depth"] for d in r["depths"]]
            depth_ax.plot(
                steps,
                [d["durable_median_s"] for d in r["depths"]],
                "o-",
                label=f"crew_durable ({r['backend']})",
            )
            depth_ax.plot(
                steps, [d["bare_median_s"] for d in r["depths"]], "x--", label=f"DBOS alone ({r['backend']})"
            )
        depth_ax.set_xscale("log")
        depth_ax.set_yscale("log")
        depth_ax.set_xlabel("finished completions before the crash")
        depth_ax.set_ylabel("launch to first new step (s)")
        depth_ax.set_title("Recovery time against steps")
        depth_ax.legend(fontsize=8)

    concurrency = _latest("concurrency")
    if concurrency:
        for r in concurrency["results"]:
            for mode in ("threads", "asyncio"):
                rows = [row for row in r["rows"] if row["mode"] == mode]
                concurrency_ax.plot(
                    [row["concurrency"] for row in rows],
                    [row["runs_per_second"] for row in rows],
                    "o-" if mode == "threads" else "s--",
                    label=f"{mode} ({r['backend']})",
                )
        concurrency_ax.set_xscale("log", base=2)
        concurrency_ax.set_xlabel("concurrent crew runs in one process")
        concurrency_ax.set_ylabel("runs per second")
        concurrency_ax.set_title("Throughput (model at 50 ms per completion)")
        concurrency_ax.legend(fontsize=8)

    figure.suptitle("crew_durable at scale (2-core VM shared with other work; medians)")
    figure.tight_layout()
    figure.savefig(PNG, dpi=90)
    print(f"Plot written to {PNG}")
    return PNG


if __name__ == "__main__":
    main()
