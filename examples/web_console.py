"""A web console for durable crews: start a run, watch it live, answer what it asks.

    python -m examples.web_console [--port 8000] [--db sqlite:///payments.sqlite]

One page (FastAPI, no front-end build): a button starts the payments crew
(examples/payments.py); the run's events stream in live over server-sent
events; the open requests (approve a charge, review a note) are listed with
buttons to answer them. Everything after the start goes through
``CrewClient``, which needs only the database URL: the same code works in a
backend that does not run the crews.

An ``EventSource`` reconnects by itself with the last event id it saw, which
is the event's stream offset: a page that lost its connection, or a server
restarted in between, resumes the stream exactly where it was.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from dbos import DBOS
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel

from crew_durable import AnswerRefusedError, CrewClient, dbos_config

PAGE = os.path.join(os.path.dirname(__file__), "web_console.html")


class StartRun(BaseModel):
    customer: str = "ada"
    amount: int = 42


class Feedback(BaseModel):
    text: str = ""


class Denial(BaseModel):
    reason: str


def create_app(database_url: str) -> FastAPI:
    """The console's web app; runs are started in this process, read through ``CrewClient``."""
    from examples.payments import payments

    app = FastAPI(title="crew_durable console")
    client = CrewClient(database_url)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        with open(PAGE, encoding="utf-8") as html:
            return html.read()

    @app.post("/runs")
    def start(body: StartRun) -> dict[str, str]:
        handle = payments.start(inputs={"customer": body.customer, "amount": body.amount})
        return {"run_id": handle.get_workflow_id()}

    @app.get("/runs/{run_id}/events")
    def events(run_id: str, request: Request, offset: int = 0) -> StreamingResponse:
        last = request.headers.get("last-event-id")
        start_at = int(last) + 1 if last and last.isdigit() else offset

        async def sse() -> AsyncIterator[str]:
            stream = client.stream(run_id, start_at)
            while True:
                event = await asyncio.to_thread(next, stream, None)
                if event is None:
                    yield "event: end\ndata: {}\n\n"
                    return
                yield f"id: {event.offset}\ndata: {json.dumps(event.to_json())}\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream")

    @app.get("/requests")
    def requests(run_id: str | None = None) -> list[dict[str, Any]]:
        return [request.to_json() for request in client.pending_input(run_id)]

    @app.post("/requests/{request_id}/approve")
    def approve(request_id: str) -> dict[str, str]:
        return _answer(lambda: client.approve(request_id))

    @app.post("/requests/{request_id}/deny")
    def deny(request_id: str, body: Denial) -> dict[str, str]:
        return _answer(lambda: client.deny(request_id, reason=body.reason))

    @app.post("/requests/{request_id}/feedback")
    def feedback(request_id: str, body: Feedback) -> dict[str, str]:
        return _answer(lambda: client.send_feedback(request_id, body.text))

    @app.get("/runs/{run_id}")
    def status(run_id: str) -> dict[str, Any]:
        return {"run_id": run_id, "status": client.status(run_id).status}

    return app


def _answer(send: Any) -> dict[str, str]:
    try:
        send()
    except AnswerRefusedError as refused:
        raise HTTPException(status_code=409, detail=str(refused)) from None
    return {"status": "sent"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--db", default=os.environ.get("DBOS_SYSTEM_DATABASE_URL"))
    args = parser.parse_args()
    from examples import payments  # defines the crew before DBOS launches

    offline = None
    if not os.environ.get("OPENAI_API_KEY"):
        from tools.fake_openai import FakeOpenAI

        offline = FakeOpenAI(payments.offline_brain, port=payments.OFFLINE_PORT, token_delay=0.05)
    config = dbos_config("payments", args.db)
    DBOS(config=config)
    DBOS.launch()  # resumes the runs a previous server left waiting
    url = config["system_database_url"]
    try:
        uvicorn.run(create_app(url), host="127.0.0.1", port=args.port, log_level="warning")
    finally:
        DBOS.destroy()
        if offline is not None:
            offline.close()


if __name__ == "__main__":
    main()
