"""A crew with crewAI memory: what the first task learns, the second recalls.

crewAI recalls memories before each task and saves the task's result after
it (with its memory LLM and embeddings), and gives the agent memory tools.
Memory lives in files under $CREWAI_STORAGE_DIR, so tests run this app only
in fresh interpreters that each get a storage directory of their own.
"""

from __future__ import annotations

import json
from typing import Any

from crewai import Agent, Crew, Task

from crew_durable import DBOSCrew
from crew_durable._outputs import crew_output_to_json
from tests.support.cassettes import API_KEY, BASE_URL, fake_llm
from tools.fake_openai import tool_call

FORK_SERVER = False  # its memory files are opened at import

note_taker = Agent(
    role="Note taker", goal="Remember and recall facts", backstory="Organised.", llm=fake_llm()
)
notebook = DBOSCrew(
    crew_name="notebook",
    orig_crew=Crew(
        agents=[note_taker],
        tasks=[
            Task(
                description="Remember that the launch code is 4242.", expected_output="Done", agent=note_taker
            ),
            Task(description="What is the launch code?", expected_output="The code", agent=note_taker),
        ],
        memory=True,
        embedder={
            "provider": "openai",
            "config": {"api_key": API_KEY, "api_base": BASE_URL, "model_name": "text-embedding-3-small"},
        },
    ),
)


def kickoff() -> dict[str, Any]:
    output = crew_output_to_json(notebook.kickoff())
    memory = notebook.crew._memory
    output["memories"] = sorted(record.content for record in memory.list_records())
    return output


SCENARIOS = {"kickoff": kickoff}

_MEMORY_ANSWERS = {
    "ExtractedMemories": {"memories": ["The launch code is 4242."]},
    "MemoryAnalysis": {
        "suggested_scope": "/facts",
        "categories": ["codes"],
        "importance": 0.9,
        "extracted_metadata": {"entities": ["launch code"], "dates": [], "topics": ["launch"]},
    },
    "QueryAnalysis": {
        "keywords": ["launch code"],
        "suggested_scopes": ["/"],
        "complexity": "simple",
        "recall_queries": ["launch code"],
        "time_filter": None,
    },
    "ConsolidationPlan": {"actions": [], "insert_new": True, "insert_reason": "A new fact."},
}


def brain(body: dict[str, Any]) -> dict[str, Any]:
    schema = (body.get("response_format") or {}).get("json_schema", {}).get("name")
    if schema in _MEMORY_ANSWERS:
        return {"content": json.dumps(_MEMORY_ANSWERS[schema])}
    user = str(body["messages"][1]["content"])
    results = [str(m["content"]) for m in body["messages"] if m["role"] == "tool"]
    tools = {t["function"]["name"] for t in body.get("tools", [])}
    save, search = (sorted(n for n in tools if word in n.lower()) for word in ("save", "search"))
    if "Remember that" in user:
        if not results and save:
            return {
                "tool_calls": [tool_call(save[0], {"contents": ["The launch code is 4242."]}, "call_save")]
            }
        return {"content": "Noted: the launch code is 4242."}
    if not results and search:
        return {"tool_calls": [tool_call(search[0], {"queries": ["launch code"]}, "call_search")]}
    return {"content": "The launch code is 4242." if any("4242" in r for r in results) else "I do not know."}
