"""Durable crewAI apps the tests run, defined at module level as users would.

Each app module defines its agents (and crews) at import time, a ``brain``
(how the fake OpenAI server answers, used only to record cassettes) and
``SCENARIOS``: named runs the tests, the subprocess harness and the cassette
recorder share.
"""
