"""The web console example, driven by a person in a real headless Chromium.

The example serves the payments crew (offline, with its scripted model);
the test starts a run from the page, watches the note stream in, approves
the charge, asks for a change to the note, accepts the revision and sees
the run finish: what a person sees, and nothing else.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cassettes import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REQUIRE_BROWSER = os.environ.get("CREW_DURABLE_REQUIRE_BROWSER") == "1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def console(tmp_path: Path, fixed_ports: None) -> Iterator[str]:
    port = _free_port()
    log = (tmp_path / "console.log").open("wb")
    env = {**os.environ, "CREWAI_STORAGE_DIR": str(tmp_path / "crewai")}
    env.pop("OPENAI_API_KEY", None)  # offline: the example's scripted model
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "examples.web_console",
            "--port",
            str(port),
            "--db",
            f"sqlite:///{tmp_path}/c.sqlite",
        ],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((tmp_path / "console.log").read_text()[-3000:]) from None
            time.sleep(0.1)
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_person_follows_a_run_and_answers_it_in_the_browser(console: str) -> None:
    if not Path(CHROMIUM).exists():
        if REQUIRE_BROWSER:
            pytest.fail(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium).")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page()
            page.goto(console)
            expect(page.locator("#no-requests")).to_be_visible()
            page.click("#start")

            # The cashier wants to charge the card: the request appears, the person approves.
            approval = page.locator(".request[data-kind=approval]")
            expect(approval).to_contain_text(
                "payments.cashier wants to call charge_card(customer='ada', amount=42)"
            )
            expect(page.locator("#events")).to_contain_text("🔧 payments.cashier: charge_card")
            approval.get_by_role("button", name="Approve").click()

            # The note streams in, a word at a time, while the person watches.
            note = page.locator(".completion", has_text="payments.writer:").first
            seen: list[str] = []
            deadline = time.monotonic() + 30
            while "payment." not in (seen[-1] if seen else "") and time.monotonic() < deadline:
                if note.count():
                    text = note.inner_text()
                    if not seen or seen[-1] != text:
                        seen.append(text)
                time.sleep(0.01)
            assert seen[-1].endswith("Final Answer: Thanks for your payment.")
            assert len(seen) >= 2, f"the note did not stream in: {seen}"  # partial text first

            # The note waits for review: the person asks for a change, then accepts the revision.
            review = page.locator(".request[data-kind=feedback]")
            expect(review).to_contain_text("asks for your review of: Thanks for your payment.")
            review.locator("input").fill("Mention the amount")
            review.get_by_role("button", name="Send").click()
            # The revision is a completion streamed word by word: over 5 s once while both cores were busy.
            expect(review).to_contain_text("(Revised: Mention the amount)", timeout=30_000)
            review.get_by_role("button", name="Accept").click()

            status = page.locator("#status")
            expect(status).to_have_text(
                "Run finished: SUCCESS. Thank you for your payment! (Revised: Mention the amount)",
                timeout=30_000,
            )
            expect(page.locator("#no-requests")).to_be_visible()
            assert page.locator("#events").inner_text().count("⏸") == 3  # three questions, each once
        finally:
            browser.close()
