"""An agent on a model without function calling: crewAI's text (ReAct) loop.

The model does not stop at "Observation:" by itself and invents one; crewAI
relies on stop words, which the OpenAI provider applies on the client.
Its action input is prose, so crewAI asks the function-calling LLM to turn
it into arguments.
"""

from __future__ import annotations

import json
from typing import Any

from crewai import Agent, Task
from crewai.llms.providers.openai.completion import OpenAICompletion

from crew_durable import DBOSAgent
from tests.support.apps.calculator import multiplier
from tests.support.cassettes import API_KEY, BASE_URL, fake_llm


class TextOnlyLLM(OpenAICompletion):
    """An OpenAI-compatible model served without function calling."""

    def supports_function_calling(self) -> bool:
        return False


text_calculator = DBOSAgent(
    agent_name="text_calculator",
    orig_agent=Agent(
        role="Calculator",
        goal="Answer arithmetic questions exactly, using your tools",
        backstory="You never do arithmetic in your head.",
        tools=[multiplier],
        llm=TextOnlyLLM(model="gpt-4o-mini", base_url=BASE_URL, api_key=API_KEY),
        function_calling_llm=fake_llm("gpt-4o-mini"),
    ),
)


def execute_task() -> str:
    task = Task(description="What is 3 times 4?", expected_output="A single number", agent=text_calculator)
    return str(text_calculator.execute_task(task))


SCENARIOS = {"execute_task": execute_task}

HALLUCINATION = (
    "Thought: I should multiply the numbers.\n"
    "Action: multiplier\n"
    "Action Input: three and four\n"
    "Observation: 999\n"
    "Thought: I now know the final answer\n"
    "Final Answer: 999"
)


def brain(body: dict[str, Any]) -> dict[str, Any]:
    if "response_format" in body:  # the function-calling LLM, asked for arguments
        return {
            "content": json.dumps(
                {"tool_name": "multiplier", "arguments": {"first_number": 3, "second_number": 4}}
            )
        }
    if any("Observation: 12" in str(m.get("content")) for m in body["messages"]):
        return {"content": "Thought: I now know the final answer\nFinal Answer: 12"}
    return {"content": HALLUCINATION}
