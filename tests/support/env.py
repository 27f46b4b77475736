"""Keep crewAI quiet and local in tests: import this before crewAI.

crewAI sends telemetry and installs signal handlers unless told not to, and
writes its storage under the user's home directory.
"""

import os
import tempfile

os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OTEL_SDK_DISABLED", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
os.environ.setdefault("CREWAI_TESTING", "true")
os.environ.setdefault("CREWAI_STORAGE_DIR", tempfile.mkdtemp(prefix="crewai-storage-"))
os.environ.setdefault("OPENAI_API_KEY", "sk-crew-durable-test-key-3f9a1c77e2b4")
