"""A stdio MCP server with one side-effecting tool, for the MCP tests.

crewAI starts it once to list its tools and once per tool call. Every
booking it makes is a line in the ledger (``$CREW_DURABLE_TEST_LEDGER``).
"""

from __future__ import annotations

from mcp.server.fastmcp import FastMCP

from tests.support import kill_points, ledger

server = FastMCP("bookings")


@server.tool()
def book_room(guest: str) -> str:
    """Book a hotel room for a guest; returns the booking reference."""
    kill_points.tool_started("book_room")
    ledger.record("book_room", guest=guest)
    return f"booking BK-{guest.upper()}-1"


if __name__ == "__main__":
    server.run()
