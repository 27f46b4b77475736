"""A crew with crewAI knowledge: a librarian answers two questions from its source.

crewAI embeds an agent's knowledge sources at each kickoff (the crew sets its
agents up) and, before each task, asks the agent's LLM to rewrite the task
into a search query, then searches the knowledge with it (an embeddings
request and a local vector-store search). The knowledge is the agent's, not
the crew's: crewAI embeds a crew's sources whenever a ``Crew`` is validated,
so already at import, outside any cassette. The vector store lives in files
under $CREWAI_STORAGE_DIR, so tests run this app only in fresh interpreters
that each get a storage directory of their own.
"""

from __future__ import annotations

from typing import Any

from crewai import Agent, Crew, Task
from crewai.knowledge.knowledge_config import KnowledgeConfig
from crewai.knowledge.source.string_knowledge_source import StringKnowledgeSource
from crewai.knowledge.storage.knowledge_storage import KnowledgeStorage

from crew_durable import DBOSCrew
from crew_durable._outputs import crew_output_to_json
from tests.support.cassettes import API_KEY, BASE_URL, fake_llm

FORK_SERVER = False  # its vector store is opened where crewAI's storage directory was at import

FACTS = "The launch code is 4242. The launch site is Kourou."
EMBEDDER: Any = {
    "provider": "openai",
    "config": {"api_key": API_KEY, "api_base": BASE_URL, "model_name": "text-embedding-3-small"},
}

librarian = Agent(
    role="Librarian",
    goal="Answer from the library's knowledge",
    backstory="Precise.",
    llm=fake_llm(),
    knowledge_sources=[StringKnowledgeSource(content=FACTS)],
    # The fake server's embeddings are hashes, not meanings: keep every search result.
    knowledge_config=KnowledgeConfig(score_threshold=0.0),
)
library = DBOSCrew(
    crew_name="library",
    orig_crew=Crew(
        agents=[librarian],
        tasks=[
            Task(description="What is the launch code?", expected_output="The code", agent=librarian),
            Task(description="Where is the launch site?", expected_output="The site", agent=librarian),
        ],
        embedder=EMBEDDER,
    ),
)


def stored_documents() -> list[str]:
    """Every document in the librarian's knowledge collection, read without embedding anything."""
    storage = KnowledgeStorage(embedder=EMBEDDER, collection_name="Librarian")
    collection = storage._get_client().get_or_create_collection(collection_name="knowledge_Librarian")
    return sorted(collection.get()["documents"])


def kickoff() -> dict[str, Any]:
    output = crew_output_to_json(library.kickoff())
    output["documents"] = stored_documents()
    return output


SCENARIOS = {"kickoff": kickoff}

_QUERIES = {"What is the launch code?": "launch code", "Where is the launch site?": "launch site"}


def brain(body: dict[str, Any]) -> dict[str, Any]:
    system = str(body["messages"][0]["content"])
    user = str(body["messages"][1]["content"])
    question = next(q for q in _QUERIES if q in user)
    if system.startswith("Your goal is to rewrite the user query"):
        return {"content": _QUERIES[question]}
    if question.startswith("What"):
        return {"content": "The launch code is 4242." if "4242" in user else "I do not know."}
    return {"content": "The launch site is Kourou." if "Kourou" in user else "I do not know."}
