"""crew_durable's tests. Importing this package first keeps crewAI quiet and local."""

from tests.support import env as _env  # noqa: F401  - before any test module imports crewAI
