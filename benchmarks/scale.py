"""Every scale benchmark, one after the other, then the plot.

    python -m benchmarks.scale [--quick] [--backends sqlite,postgres] [--only storage,floor,...]

Runs storage, floor, peer, concurrency and depth (in that order), each in a
process of its own (each defines its own agents and launches DBOS its own
way), then benchmarks/plot.py. Each prints its tables and writes
``benchmarks/results/<name>-<time>.json`` and ``<name>-latest.json``; the
plot is benchmarks/scale.png. ``--quick`` passes each its own ``--quick``
(fewer rounds and trials, depths up to 500 steps: about 10 minutes on a
2-core machine); the full run takes about 30 minutes, most of it building
the two 1,000-step runs (the openai SDK's per-request work grows with the
conversation, so a run's 1,000th completion takes far longer than its first).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

BENCHMARKS = ("storage", "floor", "peer", "concurrency", "depth")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--only", default=",".join(BENCHMARKS))
    args = parser.parse_args()
    started = time.monotonic()
    for name in args.only.split(","):
        command = [sys.executable, "-m", f"benchmarks.{name}", "--backends", args.backends]
        if args.quick:
            command.append("--quick")
        print(f"\n=== {name} ===", flush=True)
        subprocess.run(command, check=True)
    subprocess.run([sys.executable, "-m", "benchmarks.plot"], check=True)
    print(f"\nAll scale benchmarks in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
