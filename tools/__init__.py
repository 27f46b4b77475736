"""Developer tooling: the fake OpenAI server and the cassette recorder."""
