"""A local OpenAI-compatible server whose answers come from a Python function.

The project records its cassettes against this server (see
``cassettes/README.md``) and the benchmarks run against it at zero latency.
A *brain* is any callable that takes the decoded request body of
``POST /v1/chat/completions`` and returns the assistant message as a dict
(``{"content": ...}`` or ``{"tool_calls": [...]}``). The server adds ids,
token usage and, when the request asks for it, the server-sent-event stream.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Brain = Callable[[dict[str, Any]], dict[str, Any]]


class FakeHTTPError(Exception):
    """Raised by a brain to answer with an HTTP error, as OpenAI does."""

    def __init__(self, status: int, message: str, error_type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.payload = {"error": {"message": message, "type": error_type, "code": None, "param": None}}


def tool_call(name: str, arguments: dict[str, Any], call_id: str) -> dict[str, Any]:
    """One OpenAI function tool call, as a brain returns it."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def _count_tokens(value: Any) -> int:
    """A stable, cheap token estimate: one token per four characters."""
    return max(1, len(json.dumps(value)) // 4)


class FakeOpenAI:
    """Serve ``brain`` on 127.0.0.1 until :meth:`close`; counts requests."""

    def __init__(self, brain: Brain, port: int = 0, token_delay: float = 0.0) -> None:
        self.brain = brain
        self.token_delay = token_delay
        """Seconds between the streamed pieces of an answer, as a model takes to write them."""
        self.requests: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def close(self) -> None:
        """Stop serving, and drop kept-alive connections so no client reaches us later."""
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """The chat.completion object the server answers ``body`` with."""
        with self._lock:
            self.requests.append(body)
            number = next(self._ids)
        message = {"role": "assistant", "content": None, **self.brain(body)}
        prompt_tokens = _count_tokens(body.get("messages", []))
        completion_tokens = _count_tokens(message)
        return {
            "id": f"chatcmpl-fake-{number}",
            "object": "chat.completion",
            "created": 1_700_000_000 + number,
            "model": body.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle's algorithm the body
            # would wait for the client's delayed ACK (40 ms on Linux) on every answer.
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                with fake._lock:
                    fake._connections.add(self.connection)

            def finish(self) -> None:
                super().finish()
                with fake._lock:
                    fake._connections.discard(self.connection)

            def log_message(self, format: str, *args: Any) -> None:
                """Stay quiet: tests and benchmarks read their own output."""

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.endswith("/embeddings"):
                    return self._send_json(_embeddings(body))
                if self.path.endswith("/responses/input_tokens"):
                    payload = {"object": "response.input_tokens", "input_tokens": _count_tokens(body)}
                    return self._send_json(payload)
                if not self.path.endswith("/chat/completions"):
                    return self._send_json({"error": {"message": f"no route {self.path}"}}, 404)
                try:
                    completion = fake.complete(body)
                except FakeHTTPError as error:
                    return self._send_json(error.payload, error.status)
                if body.get("stream"):
                    return self._send_stream(completion)
                return self._send_json(completion)

            def _send_json(self, payload: dict[str, Any], status: int = 200) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _send_stream(self, completion: dict[str, Any]) -> None:
                events = [f"data: {json.dumps(chunk)}\n\n".encode() for chunk in _chunks(completion)]
                events.append(b"data: [DONE]\n\n")
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                if not fake.token_delay:
                    data = b"".join(events)
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_header("connection", "close")  # the body ends when the connection does
                self.end_headers()
                self.close_connection = True
                for event in events:
                    self.wfile.write(event)
                    self.wfile.flush()
                    time.sleep(fake.token_delay)

        return Handler


def _embeddings(body: dict[str, Any]) -> dict[str, Any]:
    """Deterministic 16-dimensional embeddings: the same text always gets the same vector."""
    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
    data = []
    for index, text in enumerate(texts):
        digest = hashlib.sha256(str(text).encode()).digest()
        vector = [byte / 127.5 - 1 for byte in digest[:16]]
        if body.get("encoding_format") == "base64":
            embedding: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        else:
            embedding = vector
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(_count_tokens(text) for text in texts)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": body.get("model", "fake"), "usage": usage}


def _chunks(completion: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Split a completion into the chunks OpenAI streams for it."""
    base = {k: completion[k] for k in ("id", "created", "model")}
    base["object"] = "chat.completion.chunk"
    choice = completion["choices"][0]
    message = choice["message"]
    delta: dict[str, Any] = {"role": "assistant"}
    if message.get("tool_calls"):
        delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
    pieces = re.findall(r"\S+\s*|\s+", message.get("content") or "")  # a word at a time
    for index, piece in enumerate(pieces or [""]):
        chunk = {**delta, "content": piece} if index == 0 else {"content": piece}
        if not piece:
            chunk.pop("content")
        yield {**base, "choices": [{"index": 0, "delta": chunk, "finish_reason": None}]}
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]}
    yield {**base, "choices": [], "usage": completion["usage"]}


def _serve_forever(brain: Brain, port: int, ready: Any) -> None:
    FakeOpenAI(brain, port)
    ready.set()
    threading.Event().wait()


@contextmanager
def serve_in_process(brain: Brain, port: int) -> Iterator[str]:
    """Serve ``brain`` from a process of its own, so it does not share our interpreter's lock."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    ready = context.Event()
    process = context.Process(target=_serve_forever, args=(brain, port, ready), daemon=True)
    process.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("the fake OpenAI server did not start")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.kill()
        process.join()


@contextmanager
def serve(brain: Brain, port: int = 0, token_delay: float = 0.0) -> Iterator[FakeOpenAI]:
    """Run a :class:`FakeOpenAI` for the duration of a ``with`` block."""
    server = FakeOpenAI(brain, port, token_delay)
    try:
        yield server
    finally:
        server.close()
