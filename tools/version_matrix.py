"""Test crew_durable against the lowest and the newest crewAI and DBOS releases pyproject.toml allows.

The pinned lock (constraints.txt) is one point of the declared ranges; this
script checks their ends. Each combination gets a throwaway virtualenv of its
own (under ``$CREW_DURABLE_VERSIONS_CACHE``, default ``~/.cache/crew_durable/versions``;
never ``.venv``), with crew_durable installed from a copy of this tree and
everything else resolved by pip, and runs the core of the suite there, on
SQLite and Postgres, against this tree's code and tests.

    python3 tools/version_matrix.py             # lowest and newest releases of both
    python3 tools/version_matrix.py --short     # what CI runs: the same, less what ./dev test ran
    python3 tools/version_matrix.py --bisect    # also: the lowest crewAI release in range that passes
    python3 tools/version_matrix.py --crewai 1.15.3 --dbos 3.4.0   # one combination

``--short`` leaves out the newest combination when it is the one
constraints.txt pins (``./dev test`` has just run the whole suite on it).
Exits non-zero if a tested combination fails. Releases are listed with
``pip index versions``; final releases only.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(
    os.environ.get("CREW_DURABLE_VERSIONS_CACHE", Path.home() / ".cache" / "crew_durable" / "versions")
)
PACKAGES = ("crewai", "dbos")
CORE_TESTS = [
    "tests/test_crewai_internals.py",  # every private crewAI name crew_durable relies on
    "tests/test_dbos_internals.py",  # every private DBOS name
    "tests/test_import.py",
    "tests/test_agent.py",
    "tests/test_crew.py",
    "tests/test_recovery.py",  # a task killed with SIGKILL resumes in a fresh process
]
TEST_TOOLS = ["pytest>=8", "pytest-timeout>=2.3", "pytest-xdist>=3.5", "vcrpy>=6", "pyyaml>=6"]
PROJECT_FILES = ["pyproject.toml", "README.md", "crew_durable"]

Version = tuple[int, ...]


def parse(version: str) -> Version:
    return tuple(int(part) for part in version.split("."))


def declared_range(package: str) -> tuple[Version, Version]:
    """The ``>=low,<high`` bounds pyproject.toml declares for ``package``."""
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(rf'"{package}>=([0-9.]+),<([0-9.]+)"', text)
    if match is None:
        raise SystemExit(f"pyproject.toml declares no '{package}>=low,<high' range")
    return parse(match.group(1)), parse(match.group(2))


def releases_in_range(package: str) -> list[str]:
    """The final releases of ``package`` inside its declared range, oldest first."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", package],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Available versions: (.*)", out)
    if match is None:
        raise SystemExit(f"pip lists no releases of {package}:\n{out}")
    low, high = declared_range(package)
    found = [v.strip() for v in match.group(1).split(",")]
    finals = [v for v in found if re.fullmatch(r"[0-9]+(\.[0-9]+)*", v)]
    return sorted((v for v in finals if low <= parse(v) < high), key=parse)


@dataclass
class Result:
    crewai: str
    dbos: str
    install_seconds: float = 0.0
    test_seconds: float = 0.0
    install_error: str = ""
    # backend -> (passed, failed, skipped); "other" for tests not parametrized by backend
    counts: dict[str, list[int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.install_error and not self.failures and bool(self.counts)

    def line(self) -> str:
        head = f"crewai=={self.crewai:<8} dbos=={self.dbos:<7}"
        if self.install_error:
            return f"{head} INSTALL FAILED: {self.install_error}"
        parts = [
            f"{backend}: {p} passed" + (f", {f} failed" if f else "") + (f", {s} skipped" if s else "")
            for backend, (p, f, s) in sorted(self.counts.items())
        ]
        verdict = "PASS" if self.ok else "FAIL"
        timing = f"(install {self.install_seconds:.0f}s, tests {self.test_seconds:.0f}s)"
        return f"{head} {verdict}  {'; '.join(parts)}  {timing}"


def dependencies() -> str:
    """pyproject.toml's ``dependencies = [...]`` block."""
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r"^dependencies = \[.*?^\]", text, re.MULTILINE | re.DOTALL)
    return match.group(0) if match else text


def locked() -> dict[str, str]:
    """The releases of crewAI and DBOS constraints.txt pins."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() in PACKAGES:
            pins[name.strip().lower()] = version.strip()
    return pins


def venv_for(crewai: str, dbos: str, log: Path) -> tuple[Path, float]:
    """A virtualenv with these releases, crew_durable and the test tools.

    Reused while pyproject.toml's dependencies are unchanged.
    """
    python_tag = f"py{sys.version_info[0]}{sys.version_info[1]}"
    digest = hashlib.sha256(dependencies().encode()).hexdigest()[:12]
    venv = CACHE / f"{python_tag}-crewai{crewai}-dbos{dbos}"
    stamp = venv / ".installed"
    if stamp.exists() and stamp.read_text() == digest:
        return venv, 0.0
    started = time.monotonic()
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    with tempfile.TemporaryDirectory() as source:  # build from a copy: pip writes build/ into its source
        for name in PROJECT_FILES:
            path = ROOT / name
            if path.is_dir():
                shutil.copytree(path, Path(source) / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(path, Path(source) / name)
        command = [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-compile",  # the tests compile what they import, not every module installed
            source,
            f"crewai=={crewai}",
            f"dbos=={dbos}",
            *TEST_TOOLS,
        ]
        with log.open("a") as out:
            out.write(f"$ {' '.join(command)}\n")
            out.flush()
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        raise RuntimeError(f"pip install failed (see {log})")
    stamp.write_text(digest)
    return venv, time.monotonic() - started


def run(crewai: str, dbos: str, tests: list[str], log_dir: Path) -> Result:
    result = Result(crewai, dbos)
    log = log_dir / f"crewai{crewai}-dbos{dbos}.log"
    log.write_text("")
    try:
        venv, result.install_seconds = venv_for(crewai, dbos, log)
    except RuntimeError as error:
        result.install_error = str(error)
        return result
    report = log_dir / f"crewai{crewai}-dbos{dbos}.xml"
    command = [
        str(venv / "bin" / "python"),
        "-m",
        "pytest",
        "-q",
        "-n",
        "0",
        "-p",
        "no:cacheprovider",
        "--continue-on-collection-errors",  # a module crewAI lacks fails its files; the pins still run
        f"--junitxml={report}",
        *tests,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    with log.open("a") as out:
        subprocess.run(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    result.test_seconds = time.monotonic() - started
    if not report.exists():
        result.failures.append(f"pytest wrote no report (see {log})")
        return result
    for case in ET.parse(report).getroot().iter("testcase"):
        name = case.get("name", "")
        backend = next((b for b in ("sqlite", "postgres") if f"[{b}" in name or f"-{b}]" in name), "other")
        counts = result.counts.setdefault(backend, [0, 0, 0])
        if case.find("failure") is not None or case.find("error") is not None:
            counts[1] += 1
            classname = case.get("classname")
            result.failures.append(f"{classname}::{name}" if classname else name)
        elif case.find("skipped") is not None:
            counts[2] += 1
        else:
            counts[0] += 1
    return result


def lowest_passing(releases: list[str], dbos: str, tests: list[str], log_dir: Path) -> str | None:
    """Bisect ``releases`` (oldest first) for the first crewAI release that passes.

    Assumes a release that passes is followed by releases that pass.
    """
    low, high = 0, len(releases) - 1
    first: str | None = None
    while low <= high:
        middle = (low + high) // 2
        result = run(releases[middle], dbos, tests, log_dir)
        print(f"  bisect: {result.line()}", flush=True)
        if result.ok:
            first, high = releases[middle], middle - 1
        else:
            low = middle + 1
    return first


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--crewai", nargs="*", help="crewAI releases to test (default: lowest and newest)")
    parser.add_argument("--dbos", nargs="*", help="DBOS releases to test (default: lowest and newest)")
    parser.add_argument("--short", action="store_true", help="skip the combination constraints.txt pins")
    parser.add_argument("--bisect", action="store_true", help="find the lowest crewAI release that passes")
    parser.add_argument("--tests", nargs="*", default=CORE_TESTS, help="test files to run")
    parser.add_argument("--logs", type=Path, default=CACHE / "logs", help="where pip and pytest output go")
    args = parser.parse_args()
    args.logs.mkdir(parents=True, exist_ok=True)

    ranges = {package: releases_in_range(package) for package in PACKAGES}
    for package, found in ranges.items():
        low, high = declared_range(package)
        print(
            f"{package} {'.'.join(map(str, low))} to <{'.'.join(map(str, high))}: "
            f"{len(found)} releases, {found[0]} to {found[-1]}",
            flush=True,
        )
    if args.crewai or args.dbos:
        combos = [
            (c, d)
            for c in (args.crewai or [ranges["crewai"][-1]])
            for d in (args.dbos or [ranges["dbos"][-1]])
        ]
    else:  # the two ends of both ranges
        combos = [(ranges["crewai"][0], ranges["dbos"][0]), (ranges["crewai"][-1], ranges["dbos"][-1])]
        combos = list(dict.fromkeys(combos))
        if args.short:
            pinned = locked()
            combos = [c for c in combos if c != (pinned.get("crewai"), pinned.get("dbos"))]
            pins = f"crewai=={pinned.get('crewai')} dbos=={pinned.get('dbos')}"
            print(f"constraints.txt pins {pins}, which ./dev test runs in full")

    results = []
    for crewai, dbos in combos:
        result = run(crewai, dbos, args.tests, args.logs)
        results.append(result)
        print(result.line(), flush=True)
        for failure in result.failures[:10]:
            print(f"    failed: {failure}", flush=True)
    if args.bisect:
        dbos = ranges["dbos"][0]
        print(f"bisecting crewAI releases {ranges['crewai'][0]}..{ranges['crewai'][-1]} on dbos=={dbos}")
        first = lowest_passing(ranges["crewai"], dbos, args.tests, args.logs)
        print(f"lowest crewAI release that passes: {first or 'none'}")
    print(f"logs: {args.logs}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
