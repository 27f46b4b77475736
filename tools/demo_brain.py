"""How the fake OpenAI answers the newsroom demo (examples/newsroom.py), for its cassette."""

from __future__ import annotations

import json
from typing import Any

from tools.fake_openai import tool_call

HEADLINE = "Durable AI agents survive crashes"


def brain(body: dict[str, Any]) -> dict[str, Any]:
    system = body["messages"][0]["content"]
    results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
    if "researcher" in system:
        if not results:
            return {
                "tool_calls": [tool_call("search_archive", {"query": "durable AI agents"}, "call_search")]
            }
        return {
            "content": "- Long-running agent jobs fail part-way.\n"
            "- Checkpointing each step lets a job resume after a crash.\n"
            "- Re-running finished work costs money and can repeat side effects."
        }
    body_text = (
        "Long-running AI agents fail part-way through their work. Checkpointing every "
        "step lets a crashed agent resume where it stopped. Nothing finished is paid "
        "for, or published, twice."
    )
    if not results:
        return {
            "tool_calls": [
                tool_call("publish_article", {"headline": HEADLINE, "body": body_text}, "call_pub")
            ]
        }
    return {"content": json.dumps({"headline": HEADLINE, "body": body_text, "url": results[0]})}
