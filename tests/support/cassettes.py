"""Replaying (and recording) the project's vcrpy cassettes.

Requests are matched on method, URI and the parsed JSON body, so a recovered
run is served exactly the responses its requests were recorded with, and a
request that differs in any way from the uninterrupted run's fails the test.
One thing is ignored: memory addresses, which crewAI's crew planner writes
into its prompt (it describes tools by their ``repr``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import vcr
from crewai import LLM
from vcr.cassette import Cassette

ROOT = Path(__file__).resolve().parents[2]
CASSETTES = ROOT / "cassettes"
SHARED_CASSETTES = ROOT.parent / "shared" / "cassettes" / "crewai"

FAKE_PORT = 8765
BASE_URL = f"http://127.0.0.1:{FAKE_PORT}/v1"
API_KEY = "sk-crew-durable-test-key-3f9a1c77e2b4"
"""A fake key: the secrets test greps the system database for it."""

FILTERED_HEADERS = ["authorization", "api-key", "x-api-key", "openai-organization", "openai-project"]


def fake_llm(model: str = "gpt-4o-mini", **settings: Any) -> LLM:
    """An OpenAI LLM pointed at the fake server the cassettes were recorded from."""
    return LLM(model=model, base_url=BASE_URL, api_key=API_KEY, **settings)


_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def _json_body(r1: Any, r2: Any) -> None:
    assert _parsed(r1.body) == _parsed(r2.body), "request bodies differ"


def _parsed(body: bytes | str | None) -> Any:
    if not body:
        return None
    text = _ADDRESS.sub(" at 0x", body.decode() if isinstance(body, bytes) else body)
    try:
        return json.loads(text)
    except ValueError:
        return text


def recorder(record: bool = False, match_on: tuple[str, ...] = ("method", "uri", "json_body")) -> vcr.VCR:
    my_vcr = vcr.VCR(
        record_mode="all" if record else "none",
        match_on=list(match_on),
        filter_headers=FILTERED_HEADERS,
        decode_compressed_response=True,
    )
    my_vcr.register_matcher("json_body", _json_body)
    return my_vcr


@contextmanager
def replay(name: str) -> Iterator[Cassette]:
    """Serve the project's cassette ``name``; the cassette counts requests played."""
    path = CASSETTES / f"{name}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m tools.record_cassettes`.")
    with recorder().use_cassette(str(path)) as cassette:
        yield cassette


def played(cassette: Cassette) -> int:
    """How many requests the cassette answered."""
    return sum(cassette.play_counts.values())
